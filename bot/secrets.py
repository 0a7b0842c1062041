"""Reading secrets (the bot token, the webhook secret): from the environment or a 0600 file, never the config.

The value is returned to the caller and never logged; errors name where the
secret was looked for, not what it is.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .config import ConfigError


def read_secret(env_name: str, file: Path | None, what: str, config_key: str) -> str:
    value = os.environ.get(env_name, "").strip()
    if value:
        return value
    if file is None:
        raise ConfigError(f"{config_key}: no {what}; fix: set {env_name} or point {config_key} at a 0600 file")
    path = Path(file)
    if not path.is_file():
        raise ConfigError(f"{config_key}: {path} not found; fix: create it (mode 0600) holding the {what}")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{config_key}: {path} is readable by others (mode {mode:o}); fix: chmod 600 {path}")
    value = path.read_text(encoding="utf-8").strip()
    if not value:
        raise ConfigError(f"{config_key}: {path} is empty; fix: put the {what} in it")
    return value
