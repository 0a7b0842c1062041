"""What Spanner does when a message carries risk: answer at once with our own words, keep theirs.

The engine's seam asks `Care.level(text)` before any other handling of every text a person sends
(care_commands.py decides where the words go). On urgent risk or distress it answers with the human-written reply from prompts/safety.toml (crisis
contacts for urgent risk; support for distress), stops the questions and offers to pause or carry
on. The person's words are kept exactly where they were going (the reflection's answer, a quick
note, an edit, a reply they chose to send) so nothing is lost. Nothing is told to anyone else and
nothing is logged: the only trace is the person's own words in their own journal.
"""

from __future__ import annotations

from .records import Choice, Reply
from .registry import Button
from .risk import Level, RiskScreen

#: The two buttons under the care reply: "pause" and "go" (carry on).
CARE = Button("care", r"(pause|go)")
PAUSE, CARRY_ON = "pause", "go"
CARRY_ON_WORDS = {"carry on", "go on", "continue", "keep going", "yes", "ok", "okay", "carry on please"}
PAUSE_WORDS = {"pause", "pause here", "stop", "later", "not now", "no", "no thanks"}


class Care:
    """Screens text and words the care reply; the engine decides where the person's words are kept."""

    def __init__(self, screen: RiskScreen):
        self.screen = screen
        self.words = screen.rules.reply

    def level(self, text: str, earlier: str = "") -> Level | None:
        return self.screen.level(text, earlier) if text and text.strip() else None

    def reply(self, level: Level) -> Reply:
        text = self.words.urgent if level == "urgent" else self.words.distress
        if self.words.local_support:
            text += "\n" + "\n".join(f"- {line}" for line in self.words.local_support)
        return Reply(text, (Choice(self.words.pause_label, CARE.data(PAUSE)),
                           Choice(self.words.carry_on_label, CARE.data(CARRY_ON))))

    def note_kept(self, number: int) -> Reply:
        return Reply(self.words.note_kept.format(number=number))

    def answer_word(self, text: str) -> str | None:
        """A typed "carry on" or "pause" after the care reply, as if the button were pressed."""
        word = " ".join(text.lower().strip().rstrip(".!").split())
        if word in CARRY_ON_WORDS:
            return CARRY_ON
        if word in PAUSE_WORDS:
            return PAUSE
        return None

    def paused(self, in_reflection: bool) -> Reply:
        return Reply(self.words.paused if in_reflection else self.words.paused_no_reflection)

    def carrying_on(self, in_reflection: bool) -> Reply:
        return Reply(self.words.carry_on if in_reflection else self.words.carry_on_no_reflection)
