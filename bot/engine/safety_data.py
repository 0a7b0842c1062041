"""The editable data behind risk screening and the care reply: prompts/safety.toml, validated.

Like every prompts/ file it is checked at start-up; a mistake (a pattern that is not a valid
regular expression, a missing reply) is named with the file, the line and the fix.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def compiles(patterns: tuple[str, ...]) -> tuple[str, ...]:
    for pattern in patterns:
        try:
            re.compile(pattern, re.I)
        except re.error as exc:
            raise ValueError(f"pattern {pattern!r} is not a valid regular expression ({exc})") from None
    return patterns


class Thresholds(_Strict):
    neighbours: int = Field(default=3, ge=1, le=25)
    urgent_similarity: float = Field(gt=0.0, le=1.0)
    distress_similarity: float = Field(gt=0.0, le=1.0)
    weak_similarity: float = Field(gt=0.0, le=1.0)
    margin: float = Field(ge=0.0, le=1.0)


class Tier(_Strict):
    """One tier of risk: patterns that decide alone, patterns that need the meaning to agree, examples."""

    strong: tuple[str, ...] = Field(min_length=1)
    weak: tuple[str, ...] = ()
    examples: tuple[str, ...] = Field(min_length=5)
    example_files: tuple[str, ...] = ()  # more examples, one per line, in files beside safety.toml

    @field_validator("strong", "weak")
    @classmethod
    def _valid(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return compiles(v)


class NotRisk(_Strict):
    patterns: tuple[str, ...] = ()
    examples: tuple[str, ...] = Field(min_length=5)
    example_files: tuple[str, ...] = ()

    @field_validator("patterns")
    @classmethod
    def _valid(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return compiles(v)


class CareWords(_Strict):
    urgent: str = Field(min_length=20)
    distress: str = Field(min_length=20)
    local_support: tuple[str, ...] = ()
    pause_label: str = Field(min_length=1, max_length=40)
    carry_on_label: str = Field(min_length=1, max_length=40)
    paused: str = Field(min_length=1)
    paused_no_reflection: str = Field(min_length=1)
    carry_on: str = Field(min_length=1)
    carry_on_no_reflection: str = Field(min_length=1)
    note_kept: str = Field(min_length=1)

    @field_validator("urgent")
    @classmethod
    def _signposts(cls, v: str) -> str:
        # The crisis lines are the point of the urgent reply: an edit must not lose them.
        missing = [n for n in ("999", "111", "116 123", "85258") if n not in v]
        if missing:
            raise ValueError(f"the urgent reply must keep the crisis contacts; missing {', '.join(missing)}")
        return v

    @field_validator("note_kept")
    @classmethod
    def _number(cls, v: str) -> str:
        if "{number}" not in v:
            raise ValueError("note_kept must contain {number}")
        return v


class SafetyRules(_Strict):
    thresholds: Thresholds
    urgent: Tier
    distress: Tier
    not_risk: NotRisk
    reply: CareWords


def _read_examples(base: Path, files: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for name in files:
        path = (base / name).resolve()
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ValueError(f"example file {name} not found; fix: restore it or remove it from example_files") from None
        out += [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return tuple(out)


def load_safety(prompts_dir: Path, load_toml, validate) -> SafetyRules:
    """Read prompts/safety.toml with the shared TOML reader and validator (they name file and line).

    Examples listed in `example_files` are read in and joined to each tier's `examples`.
    """
    path = Path(prompts_dir) / "safety.toml"
    data, text = load_toml(path)
    rules = validate(SafetyRules, path, data, text)
    try:
        updates = {}
        for name in ("urgent", "distress", "not_risk"):
            tier = getattr(rules, name)
            extra = _read_examples(path.parent, tier.example_files)
            if extra:
                merged = tuple(dict.fromkeys(tier.examples + extra))
                updates[name] = tier.model_copy(update={"examples": merged, "example_files": ()})
    except ValueError as exc:
        from .prompt_data import PromptDataError
        raise PromptDataError(f"{path}: {exc}") from None
    return rules.model_copy(update=updates)
