"""The dev set: held-out cases in eval/cases/*.toml, read and checked.

Each case is one person's reflection (answers by step id, a value equal to a button label being
pressed as that button), or one quick note, with what a careful reader expects: which messages
carry urgent risk or distress, and which literature cards would help (none, when silence is right).
The cases are ours, written for evaluation only; nothing in them is used to build Spanner's
examples, banks or thresholds at run time.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

KINDS = ("ordinary", "vague", "long", "buttons", "named", "urgent", "distress", "hard_negative", "injection")


class CasesError(Exception):
    """The dev set is malformed: the message names the file and the case."""


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=3)
    kind: Literal[KINDS]  # type: ignore[valid-type]
    setting: str = ""
    mode: Literal["reflection", "note"] = "reflection"
    note: str = ""
    meeting: str | None = None
    wants: str | None = None
    engagement: str | None = None
    level: str | None = None
    power: str | None = None
    story: str | None = None
    knock_on: str | None = None
    stance: str | None = None
    next_step: str | None = None
    followup_answers: dict[str, str] = {}
    risk: dict[str, Literal["urgent", "distress"]] = {}
    cards: list[str] = []  # the first reader's picks
    cards_all: list[str] | None = None  # a second, independent reader: every card that would help

    def relevant_cards(self) -> list[str]:
        """Cards a supervisor would accept here: the fuller second reading where there is one."""
        return self.cards_all if self.cards_all is not None else self.cards

    @model_validator(mode="before")
    @classmethod
    def _answers_table(cls, data):
        """Answers may also sit in an `[cases.answers]` table: the same as giving them at the top."""
        if isinstance(data, dict) and isinstance(data.get("answers"), dict):
            data = {**{k: v for k, v in data.items() if k != "answers"}, **data["answers"]}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> "Case":
        if self.mode == "note" and not self.note.strip():
            raise ValueError("a note case needs `note`")
        return self

    def answer(self, step_id: str) -> str | None:
        return getattr(self, step_id, None)

    def expected(self, key: str) -> str | None:
        """The risk a message carries: key is a step id, "followup:<step id>" or "note"."""
        return self.risk.get(key)


def load_cases(folder: Path, step_ids: set[str], card_ids: set[str]) -> list[Case]:
    cases: list[Case] = []
    seen: set[str] = set()
    files = sorted(Path(folder).glob("*.toml"))
    if not files:
        raise CasesError(f"{folder}: no case files; fix: point --cases at the eval/cases folder")
    for path in files:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise CasesError(f"{path}: {exc}") from None
        for raw in data.get("cases", []):
            try:
                case = Case.model_validate(raw)
            except ValidationError as exc:
                err = exc.errors()[0]
                raise CasesError(f"{path}: case {raw.get('id', '?')}: {'.'.join(map(str, err['loc']))}: "
                                 f"{err['msg']}") from None
            if case.id in seen:
                raise CasesError(f"{path}: case id {case.id} is used twice")
            seen.add(case.id)
            bad_keys = [k for k in list(case.followup_answers) + [k.removeprefix("followup:") for k in case.risk]
                        if k not in step_ids and k != "note"]
            if bad_keys:
                raise CasesError(f"{path}: case {case.id}: unknown step {bad_keys[0]!r}")
            unknown = [c for c in case.cards + (case.cards_all or []) if c not in card_ids]
            if unknown:
                raise CasesError(f"{path}: case {case.id}: no literature card {unknown[0]!r}")
            cases.append(case)
    return cases
