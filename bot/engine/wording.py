"""Words and clauses of what a person wrote: the shared vocabulary of the guard, quote-back and summaries.

Three questions recur across the engine and `spanner eval`: which words of a text did the person
not write (allowing inflection: "discharges" is supported by "discharge"), where the clauses of an
answer begin and end (so a quote or a summary line is always whole), and which words carry
content. They are answered here, once. Stemming is the Snowball English stemmer.
"""

from __future__ import annotations

import re
from functools import lru_cache

import snowballstemmer

WORD_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’-]*")
STOPWORDS = frozenset("""a an the and or but of to in on at for with by from as is are was were be been being it
its it's this that these those there their they them we our you your i me my he she his her him not no yes so if
then than too very can could would should will just about into over under up down out more most some any each
also what who how why when where which while after before during because all both own same such only other
again further once here off am do does did doing have has had having i'm i've i'd i'll we're we've they're
you're he's she's that's there's what's who's let's don't didn't doesn't isn't aren't wasn't weren't won't
wouldn't couldn't shouldn't can't cannot haven't hasn't hadn't whom whose itself themselves ourselves myself
yourself himself herself us got get gets getting go goes going went gone make made makes making one ones
really quite bit lot lots much many way ways thing things something anything everything nothing someone
anyone everyone nobody somebody said say says saying like just still even back well also yet ever
""".split())

_stemmer = snowballstemmer.stemmer("english")
# Clause boundaries inside a sentence: punctuation and the conjunctions that start a new thought.
CLAUSE_SPLIT = re.compile(
    r"\s*[;:()]\s*|\s+[-–—]\s+|,?\s+\b(?:but|whereas|while|although|though|because|so that|and then|yet)\b\s+"
    r"|,\s+(?:and|so|which|who|as)\s+|,\s+", re.I)
SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
# A full stop after these is not the end of a sentence ("Rev. Ellis", "Dr. Okafor", "e.g. the ward").
ABBREVIATIONS = re.compile(r"\b(mr|mrs|ms|dr|rev|revd|cllr|prof|st|sr|jr|no|vs|etc|e\.g|i\.e|approx|dept|tel)\.$", re.I)
LEAD_WORDS = re.compile(r"^(?:and|but|so|then|also|well|um|erm|honestly|basically|anyway|plus|oh|ok|okay)\b[,\s]*",
                        re.I)


def words(text: str) -> list[str]:
    """Words as a reader sees them: letters and digits, with apostrophes and hyphens inside."""
    return [w.strip("'’-") for w in WORD_RE.findall(text.replace("’", "'")) if w.strip("'’-")]


@lru_cache(maxsize=20_000)
def stem(word: str) -> str:
    word = word.lower().replace("’", "'")
    if word.endswith("'s"):
        word = word[:-2]
    return _stemmer.stemWord(word)


def singular(word: str) -> str:
    """Lower case, without a possessive or a plural ending: "Councils'" and "council's" -> "council"."""
    word = word.lower().replace("’", "'").removesuffix("'s").rstrip("'")
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def content_words(text: str) -> list[str]:
    """Words that carry meaning: not stopwords, not one or two letters (numbers always count)."""
    return [w for w in words(text) if w.isdigit() or (w.lower() not in STOPWORDS and len(w) > 2)]


def stems_of(text: str) -> set[str]:
    return {stem(w) for w in words(text)}


def unsupported(text: str, source: str, allowed: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """Content words, names and numbers in `text` that the person never wrote in `source`.

    `allowed`: words of our own framing (the summary's labels) that are not claims about the meeting.
    Hyphenated words count as supported when each part is.
    """
    have = stems_of(source)
    allowed_stems = {stem(p) for w in allowed for p in re.split(r"[-']", w) if p} | {stem(w) for w in allowed}
    missing: list[str] = []
    for word in content_words(text):
        parts = [p for p in re.split(r"[-']", word) if p]
        if all(stem(p) in have or stem(p) in allowed_stems or p.lower() in STOPWORDS for p in parts) \
                or stem(word) in have:
            continue
        missing.append(word)
    return missing


def sentences(text: str) -> list[str]:
    out: list[str] = []
    for piece in SENTENCE_SPLIT.split(text.strip()):
        piece = " ".join(piece.split())
        if not piece:
            continue
        if out and ABBREVIATIONS.search(out[-1]):
            out[-1] = f"{out[-1]} {piece}"  # "Rev. Ellis wanted..." stays one sentence
        else:
            out.append(piece)
    return out


def tidy_clause(clause: str) -> str:
    clause = " ".join(clause.split()).strip(" ,;:-–—")
    clause = LEAD_WORDS.sub("", clause).strip(" ,;:-–—")
    clause = clause.rstrip(".!?").strip()
    # A clause wholly in quotation marks loses them; a quotation inside it keeps both marks.
    if len(clause) > 2 and clause[0] in "\"'‘“" and clause[-1] in "\"'’”" \
            and not any(q in clause[1:-1] for q in "\"‘’“”"):
        clause = clause[1:-1].strip()
    return clause


def clauses(text: str) -> list[str]:
    """Whole clauses of a text, in order, tidied of leading conjunctions and end punctuation."""
    out: list[str] = []
    for sentence in sentences(text):
        for part in CLAUSE_SPLIT.split(sentence):
            if part:
                tidy = tidy_clause(part)
                if tidy:
                    out.append(tidy)
    return out


def jaccard(a: str, b: str) -> float:
    sa, sb = {stem(w) for w in content_words(a)}, {stem(w) for w in content_words(b)}
    return len(sa & sb) / len(sa | sb) if sa and sb else 0.0


def clip(text: str, limit: int) -> str:
    """One line of at most `limit` characters, cut at the limit with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
