"""Bad input gets a clear message and loses nothing: empty, huge, binary, unknown commands, bad config."""

from __future__ import annotations

import shutil

import pytest

from bot.config import ConfigError, load_config
from bot.engine.prompt_data import PromptDataError, load_prompt_data
from conftest import ROOT, run_cli, write_config


def _mid_reflection(chat):
    chat.say("/reflect")
    chat.say("Integrated care partnership board.")
    return chat.app.journal.load_state(chat.user)["reflect"]


def test_empty_line_is_explained_and_changes_nothing(chat):
    before = _mid_reflection(chat)
    assert chat.say("   ") == ["That message was empty, so there was nothing to save."]
    assert chat.app.journal.load_state(chat.user)["reflect"] == before


INVISIBLE = ["\u200b", "\u200b\u200c\u200d", "\ufeff \u2060", "\u00ad\u200e\u200f", "\u3164",
             "\u2800\u2800", "\ufe0f\u0301", "\u2028\u3000\t"]  # zero-width, BOM, bidi, fillers, lone marks


def test_text_of_only_zero_width_or_format_characters_counts_as_empty(chat):
    before = _mid_reflection(chat)
    for invisible in INVISIBLE:
        assert chat.say(invisible) == ["That message was empty, so there was nothing to save."], repr(invisible)
        assert "/note" in chat.say(f"/note {invisible}")[0]  # the usage, not an invisible note
    assert chat.app.journal.load_state(chat.user)["reflect"] == before
    assert chat.app.journal.count_entries(chat.user) == 0
    assert "quick note #1" in chat.say("/note A word\u200b with a zero-width space inside")[0]


def test_twenty_thousand_characters_are_kept_whole(chat):
    huge = ("We went through every item on the winter plan. " * 430)[:20_000]
    texts = chat.say(huge)
    assert texts[0].startswith("Saved as quick note #1")
    assert chat.app.journal.get_entry(chat.user, 1).note == huge.strip()


def test_a_huge_answer_inside_a_reflection_is_kept_and_the_flow_goes_on(chat):
    _mid_reflection(chat)
    huge = "Each party wanted something different. " * 520
    texts = chat.say(huge)
    assert texts[-1].endswith("?")  # a follow-up, from a trimmed view of the answer
    assert chat.app.journal.load_state(chat.user)["reflect"]["answers"]["wants"]["answer"] == huge.strip()


def test_over_the_limit_is_refused_clearly_and_the_reflection_is_untouched(chat):
    before = _mid_reflection(chat)
    texts = chat.say("x" * 60_000)
    assert "60,000 characters" in texts[0] and "50,000" in texts[0] and "Nothing was saved" in texts[0]
    assert chat.app.journal.load_state(chat.user)["reflect"] == before


def test_binary_is_refused_and_nothing_is_saved(chat):
    before = _mid_reflection(chat)
    assert "binary" in chat.say("\x00\x01\x02PNG\x00\x00")[0]
    assert "binary" in chat.say("\ufffd\ufffd\ufffd\ufffdabc")[0]
    assert chat.app.journal.load_state(chat.user)["reflect"] == before
    assert chat.app.journal.count_entries(chat.user) == 0


def test_unknown_command_is_named_and_is_not_taken_as_an_answer(chat):
    before = _mid_reflection(chat)
    assert chat.say("/frobnicate now") == ["I don't know the command /frobnicate. /help lists what I can do."]
    assert chat.app.journal.load_state(chat.user)["reflect"] == before


def test_binary_on_a_pipe_to_the_console_command(tmp_path, data_dir, model_path):
    cfg = write_config(tmp_path / "c.toml", data_dir, model_path)
    result = run_cli(["chat", "--config", str(cfg), "--user", "bin"],
                     b"\xff\xfe\x00\x89PNG\r\n\x1a\n\nA real note after the noise.\n")
    out = result.stdout.decode()
    assert result.returncode == 0
    assert "binary data" in out and "empty" in out
    assert "Saved as quick note #1" in out, out + result.stderr.decode()


@pytest.mark.parametrize("content, expected", [
    ("[llm]\nthreads = \"many\"\n", "llm.threads: Input should be a valid integer"),
    ("[llm]\nthreads = 0\n", "llm.threads: Input should be greater than or equal to 1"),
    ("[retrieval]\nmin_similaritty = 0.3\n", "retrieval.min_similaritty: Extra inputs are not permitted"),
    ("[display]\ntimezone = \"Mars/Olympus\"\n", "display.timezone"),
    ("[llm\nthreads = 2\n", "not valid TOML"),
    ("[telegram]\ntoken = \"123:abc\"\n", "telegram.token: secrets must not live in the config file"),
    ('[scheduler]\nquiet_hours = "25:00-99:99"\n', "scheduler.quiet_hours:"),
    ('[scheduler]\ndefault_time = "24:00"\n', "scheduler.default_time:"),
    ('[scheduler]\ndefault_days = "funday"\n', "scheduler.default_days:"),
    ('[telegram]\nbot_username = "a b"\n', "telegram.bot_username:"),
    ('[telegram]\nbase_url = "ftp://api.telegram.org/bot"\n', "telegram.base_url:"),
    ('[telegram]\nwebhook_url = "http://plain.example.org/hook"\n', "telegram.webhook_url:"),
    ('[telegram]\nwebhook_listen = "not a host!"\n', "telegram.webhook_listen:"),
    ('[telegram]\nwebhook_path = "telegram"\n', "telegram.webhook_path:"),
    ('[retrieval]\ncollection = "a b c"\n', "retrieval.collection:"),
    ('[storage]\nurl = "mysql://db/spanner"\n', "storage.url: not a PostgreSQL URL for psycopg 3"),
    ('[storage]\nurl = "postgresql+psycopg://db.internal:5432"\n', "storage.url: it names no database"),
])
def test_malformed_config_names_the_key_and_the_fix(tmp_path, content, expected):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert expected in message
    assert "fix:" in message
    assert "\n" not in message


TOKEN = "123456789:AAFakeTokenFakeTokenFakeTokenFakeTok1"


def test_every_config_key_with_a_wrong_kind_of_value_is_one_line_naming_it(tmp_path):
    from bot.config import Config
    for section, model in Config.model_fields.items():
        for key in model.annotation.model_fields:
            path = tmp_path / "bad.toml"
            path.write_text(f"[{section}]\n{key} = {{ nested = [1, 2] }}\n")
            with pytest.raises(ConfigError) as err:
                load_config(path)
            message = str(err.value)
            assert f"{section}.{key}" in message and "fix:" in message and "\n" not in message, message


@pytest.mark.parametrize("content", [
    f'[telegram]\nbot_username = "{TOKEN}"\n',
    f'[telegram]\nbase_url = "https://api.telegram.org/bot{TOKEN}"\n',
    f'[scheduler]\nnote = "{TOKEN}"\n',
    '[llm]\nmodel_path = "-----BEGIN PRIVATE KEY-----MIIEvQIBADANBg"\n',
    '[display]\ntimezone = "sk-proj-abcdefghijklmnopqrstuvwxyz0123"\n',
    '[paths]\ndata_dir = "Zq8vN2kLp4Rt7Wx1Yb5Hc9Jd3Fg6Mn0Ps"\n',
], ids=["token-as-username", "token-in-url", "token-anywhere", "private-key", "api-key", "random-run"])
def test_a_secret_looking_value_under_any_key_is_refused_and_never_repeated(tmp_path, content):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    secret = content.split('"')[1]
    result = run_cli(["admin", "users", "--config", str(path)])
    err = result.stderr.decode().strip()
    assert result.returncode == 2 and len(err.splitlines()) == 1 and "secret" in err and "fix:" in err, err
    for piece in (secret, TOKEN.split(":")[1], secret[-20:]):
        assert piece not in err


def test_a_database_url_with_a_password_is_refused_without_repeating_it(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[storage]\nurl = "postgresql+psycopg://spanner:hunter2horse@db.internal/spanner"\n')
    result = run_cli(["admin", "users", "--config", str(path)])
    err = result.stderr.decode().strip()
    assert result.returncode == 2 and len(err.splitlines()) == 1, err
    assert "storage.url: it holds a password" in err and "PGPASSWORD" in err and "hunter2horse" not in err


def test_ordinary_paths_and_names_are_not_taken_for_secrets(tmp_path):
    path = tmp_path / "fine.toml"
    path.write_text('[llm]\nmodel_path = "/opt/models/Qwen2.5-1.5B-Instruct-Q4_K_M.gguf"\n'
                    '[telegram]\nbot_username = "spanner_team_bot"\n'
                    '[paths]\ndata_dir = "/srv/spanner/data-3f9c2a1b7e6d4c5a8b9e0f1a2b3c4d5e"\n')
    assert load_config(path).telegram.bot_username == "spanner_team_bot"


def test_ingest_refuses_a_missing_or_empty_knowledge_folder_and_keeps_the_index(tmp_path, data_dir):
    from bot.compose import build_embedder, build_literature
    empty = tmp_path / "empty-knowledge"
    empty.mkdir()
    for folder in (tmp_path / "knowlege", empty):
        cfg = tmp_path / "c.toml"
        cfg.write_text(f'[paths]\ndata_dir = "{data_dir}"\nknowledge_dir = "{folder}"\n')
        result = run_cli(["ingest", "--quiet", "--config", str(cfg)])
        err = result.stderr.decode().strip()
        assert result.returncode == 2 and len(err.splitlines()) == 1 and str(folder) in err, err
        assert "knowledge_dir" in err and "left as it is" in err
    config = load_config(overrides={"paths.data_dir": str(data_dir)})
    assert build_literature(config, build_embedder(config)).count() > 100  # every card's chunks still there


def test_malformed_config_on_the_command_line_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[llm]\ntimeout_seconds = -1\n")
    result = run_cli(["chat", "--config", str(path)], b"/help\n")
    err = result.stderr.decode().strip()
    assert result.returncode == 2
    assert len(err.splitlines()) == 1
    assert "llm.timeout_seconds" in err and "fix:" in err
    assert result.stdout == b""


def test_missing_config_file_is_explained(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_example_config_is_valid_and_matches_the_defaults():
    example = load_config(ROOT / "config.example.toml")
    defaults = load_config()
    assert example.model_dump(exclude={"llm": {"threads"}}) == defaults.model_dump(exclude={"llm": {"threads"}})


def test_malformed_prompt_file_names_file_line_and_fix(tmp_path):
    prompts = tmp_path / "prompts"
    shutil.copytree(ROOT / "prompts", prompts)
    path = prompts / "reflection" / "after_meeting.toml"
    lines = path.read_text().splitlines()
    third_step = [i for i, ln in enumerate(lines) if ln.strip() == "[[steps]]"][2]
    question_line = next(i for i in range(third_step, len(lines)) if lines[i].startswith("question"))
    lines[question_line] = "questio = \"typo\""
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(PromptDataError) as err:
        load_prompt_data(prompts)
    message = str(err.value)
    assert str(path) in message
    # The missing key is reported at the header of the step that lacks it.
    assert f"line {third_step + 1}: steps.2.question: Field required" in message
    assert "fix: add it" in message


def test_misspelt_prompt_key_points_at_its_line(tmp_path):
    prompts = tmp_path / "prompts"
    shutil.copytree(ROOT / "prompts", prompts)
    path = prompts / "reflection" / "after_meeting.toml"
    lines = path.read_text().splitlines()
    hint_line = next(i for i, ln in enumerate(lines) if ln.startswith("hint"))
    lines[hint_line] = lines[hint_line].replace("hint", "hnit", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(PromptDataError) as err:
        load_prompt_data(prompts)
    assert f"line {hint_line + 1}: steps.0.hnit: Extra inputs are not permitted" in str(err.value)


def test_prompt_file_with_an_unknown_placeholder_is_rejected(tmp_path):
    prompts = tmp_path / "prompts"
    shutil.copytree(ROOT / "prompts", prompts)
    path = prompts / "messages.toml"
    path.write_text(path.read_text().replace('deleted = "Entry #{number} is deleted."',
                                             'deleted = "Entry #{numbr} is deleted."'))
    with pytest.raises(PromptDataError, match=r"deleted: unknown placeholder \{numbr\}"):
        load_prompt_data(prompts)


def test_privacy_says_where_data_lives(chat):
    text = chat.say("/privacy")[0]
    assert str(chat.app.config.data_dir) in text
    assert "encrypted" in text
