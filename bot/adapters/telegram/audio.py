"""Voice messages and audio files from Telegram, as the engine's AudioClips.

Only the file id is stored (inside the update, in the encrypted inbox). The
sound is fetched with getFile into memory when the update is handled, never
written to disk, so an update handled again after a crash simply fetches it
again; if Telegram no longer has it, the person is asked to resend.
"""

from __future__ import annotations

from telegram import Bot, Message
from telegram.error import BadRequest, TelegramError

from bot.engine.records import AudioClip, AudioUnavailable


def file_base_url(base_url: str) -> str:
    """Where files are downloaded: https://api.telegram.org/bot -> https://api.telegram.org/file/bot."""
    head, sep, _ = base_url.rstrip("/").rpartition("/bot")
    return f"{head}/file/bot" if sep else base_url.rstrip("/") + "/file/bot"


def audio_clip(bot: Bot, msg: Message) -> AudioClip | None:
    """The sound in a message (a voice note, an audio file, a round video, a document that is audio)."""
    media = msg.voice or msg.audio or msg.video_note
    if media is None and msg.document is not None and (msg.document.mime_type or "").startswith("audio/"):
        media = msg.document
    if media is None:
        return None
    file_id = media.file_id
    seconds = getattr(media, "duration", None)
    if seconds is not None and not isinstance(seconds, (int, float)):
        seconds = seconds.total_seconds()  # PTB_TIMEDELTA gives a timedelta

    async def fetch() -> bytes:
        try:
            found = await bot.get_file(file_id)
            return bytes(await found.download_as_bytearray())
        except BadRequest as exc:  # "file is too big" (over getFile's 20 MB), or an id Telegram has forgotten
            raise AudioUnavailable("too_big" if "too big" in str(exc).lower() else "gone") from None
        except TelegramError:
            raise AudioUnavailable("unreachable") from None
    return AudioClip(fetch=fetch, seconds=seconds, size=media.file_size)
