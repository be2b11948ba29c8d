"""The knowledge base: the business's approved answers, one or more entries per intent.

Format (YAML)::

    business: {name: ..., team: ..., phone: ..., help_url: ...}
    entries:
      - intent: card_arrival            # a label the intent model knows
        title: Card has not arrived
        answer: Approved policy text, with no customer placeholders.
        facts: [3 to 5 working days]    # exact substrings of `answer` a good reply must keep
        personal:                        # optional; used only when the customer gave that detail
          date: "You mentioned ordering it on {date}, ..."

``personal`` keys are entity kinds: amount, reference, date, card_last4.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from .types import AgentError, first_line

DEFAULT_PATH = Path(__file__).parent / "data" / "knowledge" / "bank.yaml"
PERSONAL_SLOTS = ("amount", "reference", "date", "card_last4")


@dataclass
class Entry:
    intent: str
    title: str
    answer: str
    facts: list[str] = field(default_factory=list)
    personal: dict[str, str] = field(default_factory=dict)


@dataclass
class KnowledgeBase:
    business: dict[str, str]
    entries: list[Entry]

    def for_intent(self, intent: str) -> list[Entry]:
        return [e for e in self.entries if e.intent == intent]

    @classmethod
    def load(cls, path: str | Path = "default") -> "KnowledgeBase":
        path = DEFAULT_PATH if str(path) == "default" else Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise AgentError(f"knowledge base {path} cannot be read: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise AgentError(f"knowledge base {path} is not valid YAML: {first_line(exc)}") from None
        if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
            raise AgentError(f"knowledge base {path} needs a top-level 'entries' list")
        entries = [_entry(path, i, raw) for i, raw in enumerate(data["entries"])]
        return cls(business=dict(data.get("business") or {}), entries=entries)


class Retriever:
    """Ranks knowledge-base entries for a message by its intent probabilities and embedding similarity.

    An entry scores the classifier's probability for its intent plus the cosine similarity between
    the message and the entry (title and answer, embedded once): among one intent's entries the one
    that reads most like the message ranks first, and across intents a close candidate's passage
    ranks near the top, so a near-miss intent still finds it.
    """

    def __init__(self, kb: KnowledgeBase, encode: Callable[[list[str]], np.ndarray]):
        self.kb = kb
        self.vectors = encode([f"{e.title}. {e.answer}" for e in kb.entries]) if kb.entries else np.zeros((0, 1))

    def search(self, embedding: np.ndarray, intents: dict[str, float], k: int = 3) -> list[tuple[Entry, float]]:
        similarity = self.vectors @ embedding
        scores = [intents.get(e.intent, 0.0) + float(s) for e, s in zip(self.kb.entries, similarity)]
        best = np.argsort(scores)[::-1][:k]
        return [(self.kb.entries[i], round(scores[i], 4)) for i in best]


def _entry(path: Path, index: int, raw: object) -> Entry:
    where = f"knowledge base {path}, entry {index + 1}"
    if not isinstance(raw, dict) or not raw.get("intent") or not raw.get("answer"):
        raise AgentError(f"{where}: every entry needs 'intent' and 'answer'")
    entry = Entry(intent=str(raw["intent"]), title=str(raw.get("title", raw["intent"])),
                  answer=" ".join(str(raw["answer"]).split()), facts=[str(f) for f in raw.get("facts") or []],
                  personal={str(k): str(v) for k, v in (raw.get("personal") or {}).items()})
    for fact in entry.facts:
        if fact not in entry.answer:
            raise AgentError(f"{where} ({entry.intent}): fact {fact!r} does not appear in its answer")
    for slot, sentence in entry.personal.items():
        if slot not in PERSONAL_SLOTS or sentence.count("{" + slot + "}") != 1:
            raise AgentError(f"{where} ({entry.intent}): personal '{slot}' must be one of {PERSONAL_SLOTS} "
                             f"and use {{{slot}}} exactly once")
    if "{" in entry.answer or "}" in entry.answer:
        raise AgentError(f"{where} ({entry.intent}): 'answer' must not contain placeholders; use 'personal'")
    return entry
