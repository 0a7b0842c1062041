"""Plain data the engine passes across its ports: events in, replies out, entries.

Nothing here knows about Telegram, SQL or llama.cpp. Transports turn events and
replies into their own shapes; entries are the journal's records from
storage.records (plain dataclasses, standard library only).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Awaitable, Callable

# Entries are the journal's own records (pure data, defined with storage at the bottom layer).
from storage.records import Answer, Entry  # noqa: F401  (re-exported for the engine)


@dataclass(frozen=True)
class Choice:
    """A button: a label a person reads, data the engine gets back."""

    label: str
    data: str


@dataclass(frozen=True)
class Attachment:
    """A file sent with a reply (an export). Transports deliver it without writing it to the data dir."""

    name: str
    data: bytes
    mime: str = "application/octet-stream"


@dataclass(frozen=True)
class Reply:
    """One message from the bot. Model text is marked so transports send it plain."""

    text: str
    choices: tuple[Choice, ...] = ()
    generated: bool = False  # contains model output: send as plain text, no previews
    attachment: Attachment | None = None

    def to_dict(self) -> dict:
        out = {"text": self.text, "choices": [[c.label, c.data] for c in self.choices],
               "generated": self.generated}
        if self.attachment is not None:
            out["attachment"] = {"name": self.attachment.name, "mime": self.attachment.mime,
                                 "data": base64.b64encode(self.attachment.data).decode()}
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Reply":
        att = data.get("attachment")
        attachment = Attachment(att["name"], base64.b64decode(att["data"]), att["mime"]) if att else None
        return cls(data["text"], tuple(Choice(label, d) for label, d in data.get("choices", [])),
                   bool(data.get("generated")), attachment)


class AudioUnavailable(Exception):
    """The audio of a clip cannot be had: `reason` is "too_big" (over the transport's limit), "gone"
    (expired or missing) or "unreachable" (the transport failed just now). The person is asked to resend."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class AudioClip:
    """A voice message or audio file, not fetched yet: what the transport says of it, and how to fetch it.

    `fetch` brings the bytes into memory only (never to disk) or raises AudioUnavailable. On Telegram it
    asks for the file by its id, so an event handled again after a crash fetches the audio again.
    """

    fetch: Callable[[], Awaitable[bytes]]
    seconds: float | None = None  # as the transport reports it; checked again after decoding
    size: int | None = None


@dataclass(frozen=True)
class Event:
    """Something a user did: typed text, pressed a button (choice data), or sent something else.

    `id` is the transport's unique id for the event (Telegram's update_id). With it, the
    engine recognises a redelivered event and answers with the replies it gave the first
    time instead of acting twice.
    """

    user: str  # transport-qualified handle, e.g. "console:alex"
    text: str = ""
    choice: str | None = None
    display_name: str = ""
    id: int | None = None
    # What was sent: text, sticker, photo, voice, document, edited, forwarded or other.
    kind: str = "text"
    onboarding: bool = False  # the user has just joined through an invite
    audio: AudioClip | None = None  # a voice message or audio file (kind "voice")
