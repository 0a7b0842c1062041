"""The follow-up training set (training/followups/*.jsonl): reading it and checking every example.

Each line is one example written by us: a reflection step, the person's answer (or the button they
pressed), their earlier answers in brief, and the one follow-up question a good critical friend
would ask. Every example must pass the product's own guard (one short open question, no name the
person did not write, nothing judging, not a re-ask of the step), so the model is only ever shown
what the product would let through. training/negatives.jsonl holds questions the guard must refuse
(re-asks, yes/no questions, judging, new names): the checker is tested on them, the model never
sees them.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from bot.engine.guard import Guard
from bot.engine.prompt_data import PromptData, Protocol

# How an example's answer reads; the set must hold every kind (issue: short, long, vague, named).
KINDS = ("ordinary", "short", "long", "vague", "named", "choice")
FAULTS = ("reask", "yesno", "judging", "new_name")
# The same question may serve a few different answers (a vague answer invites a general one), no more.
MAX_SAME_FOLLOWUP = 3


class DatasetError(Exception):
    """A training file is malformed: the message names the file and the line."""


@dataclass(frozen=True)
class Example:
    id: str
    step: str
    answer: str
    followup: str
    kind: str = "ordinary"
    setting: str = ""
    choice: str = ""
    earlier: dict[str, str] = field(default_factory=dict)
    fault: str = ""  # negatives only: which rule the follow-up breaks
    where: str = ""  # file:line, for messages

    def source(self) -> str:
        """Everything the person wrote that the follow-up may draw names from (as the product does)."""
        return "\n".join([*self.earlier.values(), self.answer])


def _read(path: Path) -> Iterable[Example]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path.name}: not UTF-8 text (byte {exc.start}); "
                           "fix: save it as UTF-8 JSON lines, one example per line") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path.name}:{n}"
        try:
            raw = json.loads(line)
            earlier = raw.get("earlier") or {}
            if not isinstance(earlier, dict) or not all(isinstance(v, str) for v in earlier.values()):
                raise DatasetError(f"{where}: 'earlier' must map step ids to text")
            yield Example(id=str(raw["id"]), step=str(raw["step"]), answer=str(raw["answer"]),
                          followup=str(raw["followup"]), kind=str(raw.get("kind", "ordinary")),
                          setting=str(raw.get("setting", "")), choice=str(raw.get("choice", "")),
                          earlier=dict(earlier), fault=str(raw.get("fault", "")), where=where)
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DatasetError(f"{where}: not a training example ({type(exc).__name__}: {exc}); "
                               "each line is a JSON object with id, step, answer and followup") from None


def load_examples(folder: Path) -> list[Example]:
    """Every example in folder/*.jsonl, in file order."""
    files = sorted(Path(folder).glob("*.jsonl"))
    if not files:
        raise DatasetError(f"no training files (*.jsonl) in {folder}")
    return [ex for path in files for ex in _read(path)]


def load_negatives(path: Path) -> list[Example]:
    return list(_read(Path(path)))


class Checker:
    """The product's rules, applied to one training example."""

    def __init__(self, prompts: PromptData, protocol: str = "after_meeting"):
        self.protocol: Protocol = prompts.protocols[protocol]
        self.steps = {s.id: s for s in self.protocol.steps}
        self.guard = Guard(prompts.guard, avoid=prompts.known_questions())

    def problems(self, ex: Example) -> list[str]:
        """What is wrong with this example (empty when it may be trained on)."""
        step = self.steps.get(ex.step)
        if step is None:
            return [f"unknown step {ex.step!r}"]
        found = []
        if ex.kind not in KINDS:
            found.append(f"kind {ex.kind!r} is not one of {', '.join(KINDS)}")
        if ex.choice:
            if ex.choice not in step.options:
                found.append(f"choice {ex.choice!r} is not a button of step {ex.step}")
        elif not step.followup:
            found.append(f"step {ex.step} asks follow-ups only after a button; give 'choice'")
        unknown_steps = [k for k in ex.earlier if k not in self.steps]
        if unknown_steps:
            found.append(f"earlier answers for unknown steps {unknown_steps}")
        if not ex.answer.strip():
            found.append("empty answer")
        verdict = self.guard.check_followup(ex.followup, ex.source(), step.question)
        if not verdict.ok:
            found.append(f"follow-up refused by the guard: {verdict.reason}")
        return found

    def fault_of(self, ex: Example) -> str | None:
        """The rule a (negative) follow-up breaks, in the words of FAULTS; None if it passes."""
        step = self.steps[ex.step]
        t = ex.followup.strip()
        if self.guard.reasks(t, step.question):
            return "reask"
        verdict = self.guard.check_followup(t, ex.source(), step.question)
        if verdict.ok:
            return None
        return {"closed question": "yesno", "judging": "judging", "new name": "new_name",
                "re-asks the step": "reask"}.get(verdict.reason, verdict.reason)


def check_set(examples: list[Example], checker: Checker) -> list[str]:
    """Every problem in the set: per example, duplicate ids, and questions used too often."""
    problems = [f"{ex.where} ({ex.id}): {p}" for ex in examples for p in checker.problems(ex)]
    for id_, n in Counter(ex.id for ex in examples).items():
        if n > 1:
            problems.append(f"id {id_} is used {n} times")
    for text, n in Counter(ex.followup.strip() for ex in examples).items():
        if n > MAX_SAME_FOLLOWUP:
            problems.append(f"the follow-up {text!r} is used {n} times (at most {MAX_SAME_FOLLOWUP})")
    return problems


def coverage(examples: list[Example]) -> dict[str, Counter]:
    """Counts by step, button choice, kind and setting (for the closing note and the checker's report)."""
    return {"step": Counter(ex.step for ex in examples),
            "choice": Counter(f"{ex.step}:{ex.choice}" for ex in examples if ex.choice),
            "kind": Counter(ex.kind for ex in examples),
            "setting": Counter(ex.setting or "?" for ex in examples)}


def eval_texts(eval_root: Path, step_ids: set[str], card_ids: set[str]) -> list[tuple[str, str]]:
    """(case id, text) for every answer and note in eval/ (all of its sets): the texts training must not echo.

    Read by the dev set's own reader, so a case is taken exactly as `spanner eval` takes it.
    """
    from bot.evaluation.cases import load_cases

    found = []
    for folder in sorted({path.parent for path in Path(eval_root).rglob("*.toml")}):
        for case in load_cases(folder, step_ids, card_ids):
            texts = [case.note, *(getattr(case, step) or "" for step in sorted(step_ids)),
                     *case.followup_answers.values()]
            found += [(case.id, t) for t in texts if len(t.split()) >= 4]
    return found


def near_duplicates(examples: list[Example], held_out: list[tuple[str, str]], embed, threshold: float = 0.9,
                    ) -> list[tuple[str, str, float]]:
    """(example id, case id, similarity) for every training answer this close in meaning to a held-out text.

    `embed(texts) -> array` gives unit vectors (MiniLM, as the product uses). Short answers (under four
    words, such as a button's label) are left out: they cannot carry a case's content.
    """
    import numpy as np

    mine = [ex for ex in examples if len(ex.answer.split()) >= 4]
    if not mine or not held_out:
        return []
    a = np.asarray(embed([ex.answer for ex in mine]), dtype=np.float32)
    b = np.asarray(embed([t for _, t in held_out]), dtype=np.float32)
    sims = a @ b.T
    hits = []
    for i, j in zip(*np.nonzero(sims >= threshold)):
        hits.append((mine[i].id, held_out[j][0], float(sims[i, j])))
    return hits
