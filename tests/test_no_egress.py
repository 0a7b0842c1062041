"""Nothing leaves the building: no network connection except to the configured Telegram endpoint."""

from __future__ import annotations

import os
import signal
import subprocess

from conftest import SPANNER, write_config
from storage.journal import SqlJournal
from storage.people import People
from telegram_emulator import TelegramEmulator

AUDIT = '''
import os, sys
_path = os.environ.get("SPANNER_AUDIT_FILE")
def _hook(event, args):
    if _path and event in ("socket.connect", "socket.getaddrinfo", "socket.sendto"):
        with open(_path, "a") as fh:
            fh.write(f"{event} {args[:2]!r}\\n")
sys.addaudithook(_hook)
'''


def _audited_env(tmp_path):
    hook_dir = tmp_path / "audit"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(AUDIT)
    log = tmp_path / "connections.log"
    log.touch()
    return {**os.environ, "PYTHONPATH": str(hook_dir), "SPANNER_AUDIT_FILE": str(log)}, log


def test_the_console_chat_opens_no_network_connection(tmp_path, data_dir, model_path):
    env, log = _audited_env(tmp_path)
    cfg = write_config(tmp_path / "c.toml", data_dir, model_path)
    script = b"/reflect\nA meeting.\nThey wanted more beds.\nWhy not.\n/skip\n/skip\nsave\n/search beds\n"
    result = subprocess.run([SPANNER, "chat", "--config", str(cfg), "--user", "net"], input=script,
                            capture_output=True, env=env, timeout=180)
    assert result.returncode == 0, result.stderr.decode()
    assert b"(3/9)" in result.stdout
    assert log.read_text() == ""


def test_the_telegram_bot_talks_only_to_its_configured_endpoint(tmp_path, data_dir, model_path):
    emulator = TelegramEmulator().start()
    try:
        env, log = _audited_env(tmp_path)
        env["SPANNER_TELEGRAM_TOKEN"] = emulator.token
        cfg = write_config(tmp_path / "c.toml", data_dir, model_path,
                           f'\n[telegram]\nbase_url = "{emulator.base_url}"\npoll_timeout = 1\n')
        journal = SqlJournal.open(data_dir)
        people = People(journal)
        people.redeem(people.create_invite("spanner"), "telegram:501", "Alex")
        journal.close()
        proc = subprocess.Popen([SPANNER, "telegram", "--config", str(cfg)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            emulator.send_text(501, "/reflect")
            emulator.wait_text(501, "(1/9)", timeout=60)
            emulator.send_text(501, "A quick meeting.")
            emulator.wait_text(501, "(2/9)", timeout=60)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        lines = [ln for ln in log.read_text().splitlines() if ln.strip()]
        assert lines, "the audit hook saw the bot's own connections"
        for line in lines:
            assert "127.0.0.1" in line and str(emulator.port) in line, line
    finally:
        emulator.stop()
