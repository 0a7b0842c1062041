"""The Telegram front end: a thin adapter over the same engine the console uses."""
