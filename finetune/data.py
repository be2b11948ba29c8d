"""Reading labelled examples: CSV or JSONL with a ``text`` column and ``intent`` (or ``category``)."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from agent.types import AgentError


@dataclass
class Example:
    text: str
    intent: str


def read_examples(path: str | Path) -> list[Example]:
    path = Path(path)
    if not path.is_file():
        raise AgentError(f"training data not found: {path}")
    try:
        rows = _jsonl(path) if path.suffix in (".jsonl", ".json") else _csv(path)
    except UnicodeDecodeError:
        raise AgentError(f"{path} is not UTF-8 text") from None
    examples = []
    for number, row in enumerate(rows, start=2 if path.suffix == ".csv" else 1):
        text, label = (row.get("text") or "").strip(), (row.get("intent") or row.get("category") or "").strip()
        if not text or not label:
            raise AgentError(f"{path}:{number}: each row needs 'text' and 'intent' (or 'category')")
        examples.append(Example(text, label))
    if not examples:
        raise AgentError(f"{path} holds no examples")
    return examples


def _csv(path: Path):
    with open(path, newline="", encoding="utf-8") as f:
        yield from csv.DictReader(f)


def _jsonl(path: Path):
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise AgentError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
