"""Nothing leaves the building, checked at the operating-system level (promises 16 and 23).

`spanner chat` and `spanner telegram` (against the emulator) run at the same
time under `strace -f -e trace=network`, which sees every socket call of every
thread, native libraries included (a Python audit hook cannot: onnxruntime's
telemetry resolves its host from C++). They stay up for 20 s, longer than the
telemetry takes to start. Any DNS query, any connection to a name service
socket, or any connection to an address other than loopback fails the test;
the bot's connections must all go to the emulator's port. Both transcribe a
voice note meanwhile (Whisper tiny.en: faster-whisper imports huggingface_hub).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT, SPANNER, write_config
from storage.journal import SqlJournal
from storage.people import People
from telegram_emulator import TelegramEmulator

RUN_SECONDS = 20
INET4 = re.compile(r'sa_family=AF_INET, sin_port=htons\((\d+)\), sin_addr=inet_addr\("([^"]+)"\)')
INET6 = re.compile(r'sa_family=AF_INET6, sin6_port=htons\((\d+)\),.*?inet_pton\(AF_INET6, "([^"]+)"')
NAME_SERVICE = re.compile(r'connect\(\d+, \{sa_family=AF_UNIX, sun_path="[^"]*(nscd|resolve|dbus)[^"]*"')
LOOPBACK = ("127.", "::1", "::ffff:127.")


def _traced(args: list[str], trace: Path, env: dict, **kwargs) -> subprocess.Popen:
    strace = shutil.which("strace")
    if strace is None:
        pytest.fail("strace is not installed: the egress test needs it (.ci/run installs it with apt-get)")
    return subprocess.Popen([strace, "-f", "-qq", "-e", "trace=network", "-o", str(trace), SPANNER, *args],
                            env=env, **kwargs)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the traced `spanner` itself (strace would only detach), then wait for both."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    for child in children:
        os.kill(int(child), signal.SIGTERM)
    proc.wait(60)


def _network_calls(trace: Path) -> tuple[list[tuple[str, int, str]], list[str], list[str]]:
    """(inet calls as (address, port, line), DNS-looking calls, name-service socket connects)."""
    inet, dns, names = [], [], []
    for line in trace.read_text(errors="replace").splitlines():
        if "EPERM" in line and "ptrace" in line:
            pytest.skip("this machine does not allow ptrace, so strace cannot watch the processes")
        if not re.search(r"\b(connect|sendto|sendmsg)\(", line):
            continue
        m = INET4.search(line) or INET6.search(line)
        if m:
            port, address = int(m.group(1)), m.group(2)
            inet.append((address, port, line))
            if port == 53:
                dns.append(line)
        elif "AF_INET" in line:
            inet.append(("(unreadable)", 0, line))  # a form we do not parse fails rather than slips by
        if NAME_SERVICE.search(line):
            names.append(line)
    return inet, dns, names


def test_chat_and_telegram_make_no_dns_query_and_no_outside_connection_at_the_os_level(
        tmp_path, data_dir, model_path, whisper_dir):
    emulator = TelegramEmulator().start()
    home = tmp_path / "home"  # where onnxruntime would drop its device id (~/.cache/Microsoft)
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "SPANNER_TELEGRAM_TOKEN": emulator.token}
    for switch in ("ORT_DISABLE_TELEMETRY", "HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
        env.pop(switch, None)  # Spanner must switch them off itself, at every entry point
    voice = ROOT / "tests" / "fixtures" / "voice" / "discharge.ogg"
    try:
        cfg = write_config(tmp_path / "c.toml", data_dir, model_path,
                           f'\n[telegram]\nbase_url = "{emulator.base_url}"\npoll_timeout = 1\n'
                           f'\n[voice]\nmodel = "{whisper_dir}"\n')
        journal = SqlJournal.open(data_dir)
        people = People(journal)
        people.redeem(people.create_invite("spanner"), "telegram:501", "Alex")
        journal.close()
        chat_trace, bot_trace = tmp_path / "chat.strace", tmp_path / "bot.strace"
        chat = _traced(["chat", "--config", str(cfg), "--user", "net"], chat_trace, env,
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        bot = _traced(["telegram", "--config", str(cfg)], bot_trace, env,
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started = time.monotonic()
        try:
            chat.stdin.write(b"/reflect\nA meeting.\nThey wanted more beds.\nWhy not.\n/skip\n/skip\nsave\n/search beds\n"
                             b"/voice " + str(voice).encode() + b"\n")
            chat.stdin.flush()
            emulator.send_text(501, "/reflect")
            emulator.wait_text(501, "(1/9)", timeout=90)
            emulator.send_text(501, "A quick meeting about the rota.")
            emulator.wait_text(501, "(2/9)", timeout=90)
            emulator.send_audio(501, voice.read_bytes())
            emulator.wait_text(501, "discharge meeting", timeout=90)
            time.sleep(max(0.0, RUN_SECONDS - (time.monotonic() - started)))
            out, _ = chat.communicate(b"", timeout=120)
            assert b"(3/9)" in out  # the chat really ran (embedder, model and all) while traced
            assert b"discharge meeting" in out  # and transcribed a voice note
        finally:
            _stop(bot)
            if chat.poll() is None:
                chat.kill()
    finally:
        emulator.stop()
    inet, dns, names = _network_calls(chat_trace)
    assert not dns and not names, (dns + names)[:3]
    assert not [line for address, _, line in inet if not address.startswith(LOOPBACK)], inet[:3]
    inet, dns, names = _network_calls(bot_trace)
    assert not dns and not names, (dns + names)[:3]
    assert inet, "strace saw none of the bot's own connections, so it saw nothing"
    for address, port, line in inet:
        assert address.startswith(LOOPBACK) and port == emulator.port, line
    assert not (home / ".cache" / "Microsoft").exists(), "onnxruntime wrote its telemetry device id"
