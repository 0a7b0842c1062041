"""The editable data behind safe sharing and portfolio exports, validated at start-up.

prompts/deidentify.toml says what counts as an identifier and what never does;
prompts/exports/*.toml each describe one portfolio form (NMC, HCPC, Social Work
England, Gibbs, What? So what? Now what?): its fields and which reflection
steps fill each one. An organisation adds a form by adding a file. A mistake
is named with the file, the line and the fix, like every prompts/ file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .safety_data import compiles

#: Steps that are not a reflection's answers: a quick note's text, the entry's summary, its title.
PSEUDO_STEPS = ("note", "summary", "title")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeidRules(_Strict):
    organisations: tuple[str, ...] = ()
    organisation_patterns: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    pronouns: tuple[str, ...] = Field(min_length=1)
    titles: tuple[str, ...] = ()
    min_score: float = Field(default=0.4, gt=0.0, le=1.0)

    @field_validator("organisation_patterns")
    @classmethod
    def _compile(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return compiles(v)


class FormField(_Strict):
    """One box of the form: its label, and what fills it."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str = Field(min_length=1)
    # "answers": the named steps' answers; "themes": what the author picked by button;
    # "author": left for the author to write (the hint says what goes there).
    source: Literal["answers", "themes", "author"] = "answers"
    steps: tuple[str, ...] = ()
    rest: bool = False  # also takes every answer no other field names (check-ins, other protocols)
    hint: str = ""


class Skeleton(_Strict):
    """A part of the form the author writes themselves (a profile's personal statement)."""

    heading: str = Field(min_length=1)
    text: str = Field(min_length=1)


class ExportFormat(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,20}$")
    title: str = Field(min_length=1)
    intro: str = ""
    record: str = Field(min_length=1)  # heading of one entry's form: {n}, {date}, {number}
    fields: tuple[FormField, ...] = Field(min_length=1)
    themes: tuple[str, ...] = ()  # offered as buttons for a "themes" field
    gap_months: int = Field(default=0, ge=0, le=36)  # list gaps of this many months or more (0: none)
    skeleton: tuple[Skeleton, ...] = ()

    @field_validator("record")
    @classmethod
    def _record(cls, v: str) -> str:
        try:
            v.format(n=1, date="1 Jan 2025", number=1)
        except (KeyError, IndexError, ValueError):
            raise ValueError(f"record {v!r} may hold only {{n}}, {{date}} and {{number}}") from None
        return v


def load_deid(prompts_dir: Path, load_toml, validate) -> DeidRules:
    path = Path(prompts_dir) / "deidentify.toml"
    data, text = load_toml(path)
    return validate(DeidRules, path, data, text)


def load_formats(prompts_dir: Path, load_toml, validate, step_ids: set[str], error) -> dict[str, ExportFormat]:
    """Every prompts/exports/*.toml; a step no protocol has, or themes without a themes field, is a mistake."""
    formats: dict[str, ExportFormat] = {}
    for path in sorted((Path(prompts_dir) / "exports").glob("*.toml")):
        data, text = load_toml(path)
        fmt = validate(ExportFormat, path, data, text)
        if fmt.name != path.stem:
            raise error(f"{path}: name {fmt.name!r} differs from the file name; fix: set name = \"{path.stem}\"")
        for field in fmt.fields:
            unknown = [s for s in field.steps if s not in step_ids and s not in PSEUDO_STEPS]
            if unknown:
                line = next((i + 1 for i, ln in enumerate(text.splitlines())
                             if re.search(rf"[\"']{re.escape(unknown[0])}[\"']", ln)), 1)
                raise error(f"{path}: line {line}: fields.{field.id}: no reflection step {unknown[0]!r}; fix: use "
                            f"one of {sorted(step_ids | set(PSEUDO_STEPS))}")
        if any(f.source == "themes" for f in fmt.fields) and not fmt.themes:
            raise error(f"{path}: a field takes themes but the file lists none; fix: add themes = [...]")
        formats[fmt.name] = fmt
    return formats
