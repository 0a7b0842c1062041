"""Choosing the one follow-up question after an answer: quote-back, curated, or about a button choice.

Measured blind, the small base model writes almost no usable question, while a short clause of
the person's own answer quoted inside a curated frame, or the curated question closest in meaning,
does far better (DESIGN.md section 4). So the default never asks the model:

- after a button press, a question about that choice (prompts/reflection/*.toml `choices`);
- after a typed answer, the clause that carries its content (a role, an event, a tension), quoted
  whole inside one of the step's frames; never a clause that tries to instruct the bot, abuses,
  carries a link or was flagged by the risk check;
- otherwise the step's curated question closest in meaning to the answer.

Nothing here invents words: every question is either ours or ours around theirs. Each pick passes
the same guard as generated text. A frame or question already asked in this reflection is not
asked again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from .guard import Guard
from .ports import Embedder
from .prompt_data import QuoteRules, Step
from .risk import RiskScreen
from .wording import clauses, content_words, jaccard, sentences, stem, tidy_clause, words

Source = Literal["quote", "curated", "choice", "model"]
# A clause that opens with one of these is half a thought ("if referrals stop"): not quoted alone.
SUBORDINATE = re.compile(r"^(if|when|whenever|because|since|unless|whether|although|though|without|so|as|until|"
                         r"once|after|before|while|where|which|who|that|to|and|or|but)\b", re.I)
# A clause about the writer's own hedging ("I think", "I've heard") says little worth quoting.
HEDGE = re.compile(r"^(i think|i guess|i suppose|i'm not sure|i am not sure|i don't know|i dont know|i've heard|"
                   r"i heard|i mean|to be honest|in fairness|i'd say|i would say|not sure)\b", re.I)
QUESTION_START = re.compile(r"^(what|who|how|why|when|where|which|whose|is|are|do|does|did|can|could|would|should)\b",
                            re.I)
# A word that makes a clause a statement rather than a bare name: a common verb, or -ed/-ing.
VERBISH = re.compile(r"^(is|are|was|were|be|been|has|have|had|do|does|did|will|would|could|can|should|might|"
                     r"may|must|want|wants|need|needs|say|says|said|hold|holds|held|think|thinks|feel|feels|"
                     r"felt|keep|keeps|kept|get|gets|got|go|goes|went|make|makes|made|take|takes|took|give|"
                     r"gives|gave|see|sees|saw|know|knows|knew|lose|loses|run|runs|ran|sit|sits|sat|set|sets|"
                     r"put|puts|pay|pays|paid|lead|leads|led|[a-z]+ed|[a-z]+ing|[a-z]+n't)$", re.I)
VAGUE = {"fine", "usual", "okay", "ok", "sure", "dunno", "know", "nothing", "same", "normal", "alright", "good",
         "bad", "meh", "whatever", "stuff", "various", "unsure", "unclear", "idea", "much", "lot"}


@dataclass(frozen=True)
class FollowUp:
    text: str
    source: Source
    score: float = 0.0


QUOTE_OPEN = re.compile(r"(?:^|(?<=[\s(]))['‘\"“](?=\w)")
QUOTE_CLOSE = re.compile(r"(?<=[\w.,!?])['’\"”](?=[\s.,;:!?)]|$)")


def balanced_quotes(clause: str) -> bool:
    """The person's own quotation marks open and close inside the clause (apostrophes aside)."""
    return len(QUOTE_OPEN.findall(clause)) == len(QUOTE_CLOSE.findall(clause))


class FollowUpPicker:
    """Picks follow-ups; one per process (it caches the embeddings of our own lines)."""

    def __init__(self, rules: QuoteRules, guard: Guard, embedder: Embedder | None = None,
                 screen: RiskScreen | None = None):
        self.rules = rules
        self.guard = guard
        self.embedder = embedder
        self.screen = screen
        self._never = [re.compile(p, re.I) for p in rules.never]
        self._weighty = {stem(w) for w in rules.weighty}
        self._cache: dict[str, np.ndarray] = {}

    # ----- meaning ----------------------------------------------------------------

    def _vectors(self, texts: Sequence[str], cache: bool = False) -> np.ndarray | None:
        """Embeddings for texts; our own lines are cached, a person's words never are."""
        if self.embedder is None or not texts:
            return None
        todo = [t for t in texts if t not in self._cache] if cache else list(texts)
        try:
            fresh = np.asarray(self.embedder.embed(todo), dtype=np.float32) if todo else None
        except Exception:  # meaning is a tie-breaker here; order decides without it
            return None
        if not cache:
            return fresh
        for text, vector in zip(todo, fresh if fresh is not None else []):
            self._cache[text] = vector
        return np.stack([self._cache[t] for t in texts])

    # ----- after a button -----------------------------------------------------------

    def for_choice(self, step: Step, label: str, earlier: str, asked: Sequence[str]) -> FollowUp | None:
        """A question about the option pressed, the one closest to what they wrote before."""
        questions = [q for q in step.choices.get(label, ()) if q not in asked] or list(step.choices.get(label, ()))
        if not questions:
            return None
        ranked = self._closest(questions, earlier)
        return FollowUp(ranked[0][1], "choice", ranked[0][0])

    def _closest(self, questions: Sequence[str], text: str) -> list[tuple[float, str]]:
        """Our questions ranked by closeness in meaning to `text`; in file order when that can't be told."""
        if text.strip():
            bank = self._vectors(questions, cache=True)
            target = self._vectors([text])
            if bank is not None and target is not None:
                sims = bank @ target[0]
                order = sorted(range(len(questions)), key=lambda i: (-float(sims[i]), i))
                return [(float(sims[i]), questions[i]) for i in order]
        return [(0.0, q) for q in questions]

    # ----- after a typed answer -------------------------------------------------------

    def quotable(self, step: Step, answer: str) -> list[tuple[float, str]]:
        """Clauses of the answer worth quoting back, best first, with their scores."""
        found: list[str] = []
        # Whole short sentences first (quoted intact), then their clauses. A sentence that tries to
        # instruct the bot or abuses is left out whole: none of its clauses is quoted either.
        kept = [s for s in sentences(answer) if not any(p.search(s) for p in self._never)]
        candidates = [tidy_clause(s) for s in kept] + [c for s in kept for c in clauses(s)]
        for clause in dict.fromkeys(c for c in candidates if c):
            n = len(words(clause))
            if not (self.rules.min_words <= n <= self.rules.max_words):
                continue
            content = content_words(clause)
            if len(content) < 2 or all(w.lower() in VAGUE for w in content):
                continue
            if not (n >= 6 or any(VERBISH.match(w) for w in words(clause))):
                continue  # a bare noun phrase ("housing needs manager") reads oddly inside a frame
            if QUESTION_START.match(clause) or SUBORDINATE.match(clause) or HEDGE.match(clause) \
                    or clause in step.options or jaccard(clause, step.question) >= 0.5:
                continue
            if any(p.search(clause) for p in self._never) or not balanced_quotes(clause):
                continue
            if self.screen is not None and self.screen.level(clause) is not None:
                continue
            found.append(clause)
        if not found:
            return []
        sims = None
        vectors = self._vectors(found)
        question = self._vectors([step.question], cache=True)
        if vectors is not None and question is not None:
            sims = vectors @ question[0]
        prefer = re.compile(step.prefer, re.I) if step.prefer else None
        scored = []
        for i, clause in enumerate(found):
            content = content_words(clause)
            weight = sum(1 for w in content if stem(w) in self._weighty)
            score = 0.25 * min(len(content), 6) / 6 + 0.25 * min(weight, 2) / 2
            if sims is not None:
                score += 0.5 * float(sims[i])
            if prefer is not None and prefer.search(clause):
                score += 0.3  # a clause about what the step asks (who held power, what the story is)
            scored.append((score, clause))
        return sorted(scored, key=lambda pair: -pair[0])

    def _frames_left(self, step: Step, asked: Sequence[str]) -> list[str]:
        def used(frame: str) -> bool:
            head, _, tail = frame.partition("{quote}")
            return any(q.startswith(head) and q.endswith(tail) for q in asked)
        return [f for f in step.frames if not used(f)] or list(step.frames)

    def quote_back(self, step: Step, answer: str, source: str, asked: Sequence[str]) -> FollowUp | None:
        for score, clause in self.quotable(step, answer)[:3]:
            frames = self._frames_left(step, asked)
            tails = [f.replace("‘{quote}’", "this").replace("{quote}", "this") for f in frames]
            for _sim, tail in self._closest(tails, clause):
                text = frames[tails.index(tail)].format(quote=clause)
                if text not in asked and self.guard.check_followup(text, source).ok:
                    return FollowUp(text, "quote", score)
        return None

    def curated(self, step: Step, answer: str, source: str, asked: Sequence[str]) -> FollowUp:
        """The step's curated question closest in meaning to the answer, not asked before."""
        fresh = [q for q in step.fallbacks if q not in asked] or list(step.fallbacks)
        ranked = self._closest(fresh, answer)
        return FollowUp(ranked[0][1], "curated", ranked[0][0])

    @staticmethod
    def says_little(answer: str) -> bool:
        """"?", "n/a", "dunno", "the usual": nothing to follow up without presuming what they meant."""
        content = content_words(answer)
        return not content or all(w.lower() in VAGUE for w in content)

    def for_text(self, step: Step, answer: str, source: str, asked: Sequence[str]) -> FollowUp:
        if step.frames:
            quoted = self.quote_back(step, answer, source, asked)
            if quoted is not None:
                return quoted
        return self.curated(step, answer, source, asked)

    def rank(self, candidates: Sequence[FollowUp], answer: str) -> list[FollowUp]:
        """Candidates best first: closeness in meaning to the answer, plus a share of its own words."""
        vectors = self._vectors([c.text for c in candidates])
        target = self._vectors([answer])
        own = {stem(w) for w in content_words(answer)}

        def score(i: int, c: FollowUp) -> float:
            overlap = len({stem(w) for w in content_words(c.text)} & own) / max(1, len(own))
            sim = float(vectors[i] @ target[0]) if vectors is not None and target is not None else 0.0
            return sim + 0.5 * min(overlap, 0.5)
        order = sorted(range(len(candidates)), key=lambda i: (-score(i, candidates[i]), i))
        return [candidates[i] for i in order]


# Each earlier answer is cut to about this many characters in the adapter's prompt: enough to carry who
# was there and what they wanted, short enough to keep a follow-up well under a second on 2 cores.
EARLIER_CHARS = 160


def brief(text: str, limit: int = EARLIER_CHARS) -> str:
    """Text on one line, cut at a word boundary near `limit` characters."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[:limit].rsplit(" ", 1)[0]
    return cut.rstrip(",;:") + "…"


def adapter_variables(question: str, answer: str, earlier: dict[str, str], answer_chars: int = 1500) -> dict[str, str]:
    """The adapter template's placeholders, built the same way for training and in the product.

    `earlier` maps earlier step ids to what the person wrote there, in the protocol's order.
    """
    parts = [f"{step}: {brief(text)}" for step, text in earlier.items() if text.strip()]
    flat = " ".join(answer.split())
    return {"question": question, "earlier": "; ".join(parts) or "nothing yet",
            "answer": flat[-answer_chars:]}
