"""Voice notes as a flow: what someone said becomes text on the host, and is shown before it becomes anything.

A voice message or audio file (Telegram), or `/voice PATH` (the console, whose
adapter reads the file), arrives as an event with an AudioClip. Its limits are
checked first (length and size, as the transport reports them), then the audio
is fetched into memory, transcribed through the Transcriber port (one heavy
job at a time with the model; a person who has to wait is told so), and
dropped. The transcript waits in the person's conversation state (encrypted
like the rest) with three buttons:

- Use it: the text goes through the engine's seam exactly as typed text would
  (the risk screen first, then the pending action, the reflection step or a
  quick note, and its follow-ups);
- Edit: the text is sent back on its own to copy, correct and send as a message;
- Discard: nothing is kept.

Words that carry risk are answered with care as soon as they are heard, before
the buttons: nobody waits for a confirmation to be offered help.
"""

from __future__ import annotations

from typing import Awaitable, Callable

from .context import Context, current_partial_sink
from .records import AudioUnavailable, Choice, Event, Reply
from .registry import Button, Call, Registry

#: The buttons under a transcript: what to do with it, and which transcript (older ones are stale).
VOICE = Button("voice", r"(use|edit|discard):(\d+)")

Submit = Callable[[Call, str], Awaitable[list[Reply]]]

STATUS_KEYS = {"too_long": "voice_too_long", "undecodable": "voice_undecodable", "empty": "voice_empty",
               "unavailable": "voice_off", "failed": "voice_failed"}


class VoiceCommands:
    def __init__(self, ctx: Context, submit: Submit):
        self.ctx = ctx
        self.submit = submit  # the engine's seam, for a transcript the person chose to use

    def register(self, r: Registry) -> None:
        r.command("voice", self.voice_typed)
        r.button(VOICE, self.choose)

    def voice_typed(self, call: Call) -> list[Reply]:
        """/voice as typed text: the console turns /voice PATH into audio before the engine sees it."""
        key = "voice_usage" if self.ctx.transcriber is not None else "voice_off"
        return [Reply(self.ctx.say(key, minutes=self._minutes()))]

    def _minutes(self) -> str:
        return f"{self.ctx.settings.voice_max_seconds / 60:.3g}"

    # ----- a clip arrives -------------------------------------------------------------------

    async def received(self, event: Event, state: dict) -> list[Reply]:
        say, settings, clip = self.ctx.say, self.ctx.settings, event.audio
        transcriber = self.ctx.transcriber
        if transcriber is None or not transcriber.available or clip is None:
            return [Reply(say("voice_off"))]
        if clip.seconds is not None and clip.seconds > settings.voice_max_seconds:
            return [Reply(say("voice_too_long", minutes=self._minutes()))]
        limit_mb = f"{settings.voice_max_bytes / 1024 / 1024:.3g}"
        if clip.size is not None and clip.size > settings.voice_max_bytes:
            return [Reply(say("voice_too_big", mb=limit_mb))]
        show = current_partial_sink.get()  # a transport that shows progress (Telegram) sees this at once
        if show is not None:
            show(say("voice_transcribing"))
        try:
            audio = await clip.fetch()
        except AudioUnavailable as exc:
            return [Reply(say(f"voice_{exc.reason}", mb=limit_mb))]
        if len(audio) > settings.voice_max_bytes:
            return [Reply(say("voice_too_big", mb=limit_mb))]

        def waiting(ahead: int) -> None:
            if show is not None:
                show(say("voice_waiting", ahead=ahead))
        result = await transcriber.transcribe(event.user, audio, settings.voice_max_seconds, on_wait=waiting)
        del audio  # the only copy: nothing of the sound is kept
        if result.status != "ok":
            return [Reply(say(STATUS_KEYS[result.status], minutes=self._minutes()))]
        number = int((state.get("voice") or {}).get("n", 0)) + 1
        state["voice"] = {"n": number, "text": result.text}
        replies = []
        reflect = state.get("reflect")
        level = self.ctx.care.level(result.text)
        if level is not None:
            replies.append(self.ctx.care.reply(level))
        key = "voice_transcript_answer" if reflect else "voice_transcript"
        replies.append(Reply(say(key, text=result.text), (
            Choice(say("button_voice_use"), VOICE.data("use", number)),
            Choice(say("button_voice_edit"), VOICE.data("edit", number)),
            Choice(say("button_voice_discard"), VOICE.data("discard", number)))))
        return replies

    # ----- the buttons ----------------------------------------------------------------------

    async def choose(self, call: Call) -> list[Reply]:
        action, number = call.values
        waiting = call.state.get("voice") or {}
        if "text" not in waiting or str(waiting.get("n")) != number:
            return [Reply(self.ctx.say("voice_stale"))]
        text = waiting.pop("text")  # whatever is chosen, the transcript waits no longer
        if action == "discard":
            return [Reply(self.ctx.say("voice_discarded"))]
        if action == "edit":
            return [Reply(self.ctx.say("voice_edit")), Reply(text)]
        return await self.submit(call, text)
