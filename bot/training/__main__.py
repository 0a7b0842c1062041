"""`python -m bot.training FILE_OR_FOLDER...`: check training files by the product's rules and report coverage."""

from __future__ import annotations

import sys
from pathlib import Path

from bot.engine.prompt_data import load_prompt_data

from .dataset import Checker, DatasetError, check_set, coverage, load_examples, load_negatives

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str]) -> int:
    checker = Checker(load_prompt_data(ROOT / "prompts"))
    examples = []
    try:
        for arg in argv or [str(ROOT / "training" / "followups")]:
            path = Path(arg)
            examples += load_examples(path) if path.is_dir() else load_negatives(path)
    except DatasetError as exc:
        print(exc)
        return 2
    problems = check_set(examples, checker)
    for line in problems:
        print(line)
    for name, counts in coverage(examples).items():
        print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print(f"{len(examples)} examples, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
