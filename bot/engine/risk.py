"""Risk screening: is this message urgent (suicide, self-harm, harm to others), distress, or neither?

Safety never depends on the language model (DESIGN.md section 4). Each sentence is checked
against our own patterns and, through the Embedder port, against example sentences we wrote
(prompts/safety.toml): a sentence close in meaning to an urgent example and further from every
not-risk example counts, so indirect phrasing ("nobody would notice if I disappeared") is caught
while "the patient was in distress" or "the budget is killing us" is not. Without an embedder the
patterns alone decide.

The result is a tier and nothing else: no score, no flag, no log line. What happens next (the
care reply, keeping the words in the person's own journal) is bot/engine/care.py's business.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from .ports import Embedder
from .safety_data import SafetyRules, Tier

Level = Literal["urgent", "distress"]
# Sentences end at these; a long run-on message is also cut at semicolons and line breaks.
SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+|\s+[-–—]\s+")
QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "`": "'"})
MAX_SENTENCES = 60
PRIMED_EASING = 0.10
THIRD_PARTY = re.compile(
    r"^((the|a|an|his|her|their|our) )?(he|she|they|we|staff|managers?|team|"
    r"patients?|residents?|clients?|famil(y|ies)|parents?|carers?|daughters?|sons?|mum|dad|everyone|"
    r"everybody|people|colleagues?|[A-Z][a-z]+ (from|at|of|in|said|says|told|asked|was|is|were|are|has|had|"
    r"wants?|wanted|thinks?|thought|felt|feels))\b", re.I)
FIRST_PERSON = re.compile(r"\b(i|i'm|im|i've|ive|i'd|i'll|me|my|myself|mine)\b", re.I)  # how much lower the meaning threshold is once earlier answers carried risk  # a huge message is screened in full by patterns; meaning is checked on the first 60


@dataclass(frozen=True)
class Screening:
    """What one message carries. `sentences` are the indexes of the sentences that carried it."""

    level: Level | None
    sentences: tuple[int, ...] = ()


def normalise(text: str) -> str:
    return " ".join(text.translate(QUOTES).split())


def sentences_of(text: str) -> list[str]:
    """The message's sentences, as a person would read them."""
    text = text.translate(QUOTES)
    return [" ".join(s.split()) for s in SENTENCE_END.split(text) if s and s.strip()]


class _CompiledTier:
    def __init__(self, tier: Tier):
        self.strong = [re.compile(p, re.I) for p in tier.strong]
        self.weak = [re.compile(p, re.I) for p in tier.weak]
        self.examples = tier.examples

    def strong_hit(self, sentence: str) -> bool:
        return any(p.search(sentence) for p in self.strong)

    def weak_hit(self, sentence: str) -> bool:
        return any(p.search(sentence) for p in self.weak)

    def weak_hits(self, sentence: str) -> set[int]:
        return {i for i, p in enumerate(self.weak) if p.search(sentence)}


class _Primed:
    """Whether earlier answers carried risk: worked out only when a faint sign now needs it."""

    def __init__(self, screen: "RiskScreen", earlier: str):
        self._screen, self._earlier, self._level = screen, earlier, "?"

    def __getitem__(self, tier: str) -> bool:
        if self._level == "?":
            self._level = self._screen.screen(self._earlier).level if self._earlier.strip() else None
        return self._level == "urgent" if tier == "urgent" else self._level is not None


class RiskScreen:
    """Screens text; build once (it embeds the example sentences once)."""

    def __init__(self, rules: SafetyRules, embedder: Embedder | None = None,
                 banks: dict[str, np.ndarray] | None = None):
        """`banks`: the examples already embedded (by composition, from its cache), by tier name."""
        self.rules = rules
        self.embedder = embedder
        self.urgent = _CompiledTier(rules.urgent)
        self.distress = _CompiledTier(rules.distress)
        self.not_risk = [re.compile(p, re.I) for p in rules.not_risk.patterns]
        self._banks: dict[str, np.ndarray] | None = banks

    # ----- meaning ----------------------------------------------------------------

    def _embed(self, texts: Sequence[str]) -> np.ndarray | None:
        if self.embedder is None or not texts:
            return None
        try:
            return np.asarray(self.embedder.embed(list(texts)), dtype=np.float32)
        except Exception:  # meaning is a second opinion; the patterns still decide
            return None

    def banks(self) -> dict[str, np.ndarray] | None:
        """The example sentences, embedded once (lazily, so start-up stays fast)."""
        if self._banks is None and self.embedder is not None:
            urgent = self._embed(self.rules.urgent.examples)
            distress = self._embed(self.rules.distress.examples)
            negative = self._embed(self.rules.not_risk.examples)
            if urgent is not None and distress is not None and negative is not None:
                self._banks = {"urgent": urgent, "distress": distress, "not_risk": negative}
        return self._banks

    def similarities(self, sentences: Sequence[str]) -> dict[str, np.ndarray] | None:
        """For each sentence, its closeness to each bank: the mean similarity of its nearest examples."""
        banks = self.banks()
        vectors = self._embed(sentences) if banks is not None else None
        if vectors is None or banks is None:
            return None
        k = self.rules.thresholds.neighbours
        out = {}
        for name, bank in banks.items():
            sims = vectors @ bank.T
            n = min(k, sims.shape[1])
            out[name] = np.sort(sims, axis=1)[:, -n:].mean(axis=1)
        return out

    # ----- the decision ------------------------------------------------------------

    def screen(self, text: str, earlier: str = "") -> Screening:
        """Screen `text`. `earlier`: what the person wrote before in this conversation (a reflection).

        Risk is often written faintly across several answers. After an earlier answer carried risk,
        a faint sign now (a weak pattern) is enough on its own and the meaning threshold is lower.
        """
        sentences = sentences_of(text)
        if not sentences:
            return Screening(None)
        return self.decide(sentences, self.similarities(sentences[:MAX_SENTENCES]), earlier)

    def decide(self, sentences: list[str], sims: dict[str, np.ndarray] | None, earlier: str = "") -> Screening:
        """The tier for these sentences, given their closeness to each bank (None: patterns only)."""
        t = self.rules.thresholds
        primed = _Primed(self, earlier)
        found: dict[str, list[int]] = {"urgent": [], "distress": []}
        weak_urgent: set[int] = set()  # which weak urgent patterns appeared, across the whole message
        for i, sentence in enumerate(sentences):
            vetoed = any(p.search(sentence) for p in self.not_risk)
            if not vetoed:
                weak_urgent |= self.urgent.weak_hits(sentence)
            for name, tier, threshold in (("urgent", self.urgent, t.urgent_similarity),
                                          ("distress", self.distress, t.distress_similarity)):
                if tier.strong_hit(sentence):
                    found[name].append(i)
                    break
                if vetoed:
                    continue
                weak = tier.weak_hit(sentence)
                if weak and primed[name]:
                    found[name].append(i)
                    break
                if sims is None or i >= MAX_SENTENCES:
                    continue
                sim = float(sims[name][i])
                closer = sim - float(sims["not_risk"][i]) >= t.margin
                if name == "urgent" and float(sims["distress"][i]) > sim:
                    closer = False  # more like distress than urgent risk: the distress tier decides
                near = sim >= threshold or (sim >= threshold - PRIMED_EASING and primed[name])
                # Meaning alone is not enough for a sentence about someone else: the embedder hears
                # "manager" and "worried" in "Manager is worried" as close to "I'm frightened of my manager".
                # Notes often drop the "I" ("Wrote a letter to each of the kids"), so only a sentence
                # that opens on someone else and never mentions the writer is held back.
                near = near and (bool(FIRST_PERSON.search(sentence)) or not THIRD_PARTY.match(sentence))
                if closer and ((weak and sim >= t.weak_similarity) or near):
                    found[name].append(i)
                    break
        if len(weak_urgent) >= 2 and not found["urgent"] and sims is not None:
            # Two different faint signs in one message (a will sorted, things given away) are urgent
            # when the message also reads more like the urgent examples than the not-risk ones: two
            # signs are evidence enough that no extra margin is asked for.
            lead = sims["urgent"][:MAX_SENTENCES] - sims["not_risk"][:MAX_SENTENCES]
            if float(lead.max()) > 0:
                found["urgent"].append(int(lead.argmax()))
        if found["urgent"]:
            return Screening("urgent", tuple(found["urgent"]))
        if found["distress"]:
            return Screening("distress", tuple(found["distress"]))
        return Screening(None)

    def level(self, text: str, earlier: str = "") -> Level | None:
        return self.screen(text, earlier).level
