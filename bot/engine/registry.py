"""Declare once, derive the rest: every command, button family and pending action a flow offers.

Each flow module (general, reflection, journal, sharing, mentoring, replies)
registers what it handles here, once, like python-telegram-bot's CommandHandler
and CallbackQueryHandler or errbot's @botcmd:

- a command: its name, the roles it belongs to (none: everyone's) and its
  handler; its help line and menu words live in prompts/commands.toml under the
  same name, and a command without them (or words without a command) stops
  start-up with the file and the fix;
- a button family: a `Button` (prefix and pattern: one builder, one parser)
  and its handler; data that matches no family, or its family's pattern, is a
  stale or forged button;
- a pending action: what happens to the next typed message while the action
  waits (a delete to confirm, a comment to write);
- a text handler: what a typed message means when nothing waits (an answer in
  a reflection); handlers are asked in order, and one that returns None passes.

The engine only dispatches through this registry, and /help and the Telegram
command menu are generated from it.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from .prompt_data import PromptDataError
from .records import Event, Reply

Result = list[Reply] | Awaitable[list[Reply]]
#: The roles that keep a journal: their commands are the reflection's, the journal's and sharing's.
JOURNALING = ("spanner", "mentee", "mentor")


@dataclass
class Call:
    """One event as a handler sees it: who, their conversation state, and what they sent."""

    user: str
    state: dict
    event: Event
    args: str = ""  # what followed the command, or the message typed
    values: tuple = ()  # a button's parsed values
    # Handle this message again as if no action were waiting (set by the engine for pending actions).
    again: Callable[[], Awaitable[list[Reply]]] | None = None

    @property
    def pending(self) -> dict | None:
        return self.state.get("pending")


Handler = Callable[[Call], Result]


@dataclass(frozen=True)
class Button:
    """A family of buttons: the prefix of their data, with one builder (data) and one parser (parse).

    `pattern` is a regular expression for what follows "prefix:"; its groups are the
    values the handler gets. Telegram allows 64 bytes of button data.
    """

    prefix: str
    pattern: str

    def data(self, *values: object) -> str:
        data = ":".join([self.prefix, *(str(v) for v in values)])
        if self.parse(data) is None or len(data.encode()) > 64:
            raise ValueError(f"button data {data!r} does not fit its family {self.prefix!r}")
        return data

    def parse(self, data: str) -> tuple[str, ...] | None:
        prefix, _, rest = data.partition(":")
        if prefix != self.prefix:
            return None
        match = re.fullmatch(self.pattern, rest)
        return match.groups() if match else None


@dataclass(frozen=True)
class Command:
    name: str
    handler: Handler
    roles: tuple[str, ...] = ()  # the roles whose command this is; () for everyone


@dataclass
class Registry:
    commands: dict[str, Command] = field(default_factory=dict)
    buttons: dict[str, tuple[Button, Handler]] = field(default_factory=dict)
    pending: dict[str, Handler] = field(default_factory=dict)
    texts: list[Handler] = field(default_factory=list)

    def command(self, name: str, handler: Handler, roles: tuple[str, ...] = ()) -> None:
        if name in self.commands:
            raise ValueError(f"/{name} is registered twice")
        self.commands[name] = Command(name, handler, tuple(roles))

    def button(self, family: Button, handler: Handler) -> None:
        if family.prefix in self.buttons:
            raise ValueError(f"button prefix {family.prefix!r} is registered twice")
        self.buttons[family.prefix] = (family, handler)

    def on_pending(self, action: str, handler: Handler) -> None:
        if action in self.pending:
            raise ValueError(f"pending action {action!r} is registered twice")
        self.pending[action] = handler

    def on_text(self, handler: Handler) -> None:
        self.texts.append(handler)

    def check(self, texts: dict, path: str) -> None:
        """Every command has its words in prompts/commands.toml, and every entry there a command."""
        for name in self.commands:
            if name not in texts:
                raise PromptDataError(f"{path}: [{name}]: missing; fix: add [{name}] with usage, help and menu")
        for name in texts:
            if name not in self.commands:
                raise PromptDataError(f"{path}: [{name}]: no such command; fix: remove it or check the spelling")

    def ordered(self, texts: dict) -> list[Command]:
        """Commands in the order prompts/commands.toml lists them (the order /help and the menu show)."""
        return [self.commands[name] for name in texts if name in self.commands]

    def find_button(self, data: str) -> tuple[Handler, tuple[str, ...]] | None:
        found = self.buttons.get(data.partition(":")[0])
        if found is None:
            return None
        values = found[0].parse(data)
        return None if values is None else (found[1], values)


async def run(handler: Handler, call: Call) -> list[Reply] | None:
    """Call a handler, sync or async; None means it passed (text handlers only)."""
    result: Any = handler(call)
    if inspect.isawaitable(result):
        result = await result
    return None if result is None else list(result)
