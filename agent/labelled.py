"""Reading labelled examples: CSV or JSONL with a ``text`` column and ``intent`` (or ``category``); training,
evaluation and promotion read them the same way."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .types import AgentError


@dataclass
class Example:
    text: str
    intent: str


def read_examples(path: str | Path) -> list[Example]:
    """Every example of ``path``; the first bad row is an error (training data must be clean)."""
    path = Path(path)
    examples = []
    for number, row in rows(path):
        if isinstance(row, AgentError):
            raise row
        text, label = (row.get("text") or "").strip(), label_of(row)
        if not text or not label:
            raise AgentError(f"{path}:{number}: each row needs 'text' and 'intent' (or 'category')")
        examples.append(Example(text, label))
    if not examples:
        raise AgentError(f"{path} holds no examples")
    return examples


def label_of(row: dict) -> str:
    return str(row.get("intent") or row.get("category") or row.get("label") or "").strip()


def rows(path: str | Path) -> Iterator[tuple[int, dict | AgentError]]:
    """(line number, row) for each row of a CSV or JSONL file; a row that cannot be read is an
    AgentError in its place, so a caller can skip it and go on."""
    path = Path(path)
    if not path.is_file():
        raise AgentError(f"training data not found: {path}")
    try:
        yield from (_jsonl(path) if path.suffix in (".jsonl", ".json") else _csv(path))
    except UnicodeDecodeError:
        raise AgentError(f"{path} is not UTF-8 text") from None
    except csv.Error as exc:
        raise AgentError(f"{path} is not valid CSV: {exc}") from None


def _csv(path: Path):
    with open(path, newline="", encoding="utf-8") as f:
        for number, row in enumerate(csv.DictReader(f), start=2):
            yield number, row


def _jsonl(path: Path):
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield number, AgentError(f"{path}:{number}: not valid JSON ({exc.msg})")
                    continue
                yield number, row if isinstance(row, dict) else AgentError(f"{path}:{number}: not a JSON object")
