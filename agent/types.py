"""The channel-agnostic vocabulary: what a channel hands the agent and what it gets back."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any


class AgentError(Exception):
    """A problem the user can act on; its message is one line that names the problem."""


def first_line(exc: BaseException, default: str = "") -> str:
    """The first line of an exception's message, or ``default`` when it has none: what a one-line
    error message quotes of a library's (often multi-line) error."""
    lines = str(exc).splitlines()
    return lines[0] if lines else default


def without_surrogates(text: str) -> str:
    """``text`` with lone surrogates (bytes that were not UTF-8, as Python decodes them from a
    command line or a pipe) replaced by U+FFFD, so tokenizers and JSON output take it."""
    return _SURROGATE.sub("\ufffd", text)


_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass
class Entity:
    kind: str  # amount, reference, date, card_last4, email, phone, iban, card_number
    text: str  # as written by the customer
    value: str  # normalised form used in replies (e.g. "£25.00")
    start: int
    end: int


@dataclass
class Message:
    """One customer turn, whatever channel it came from."""

    text: str
    channel: str  # "call", "email", "text"
    customer_name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def known_names(self) -> list[str]:
        """The customer's names to mask wherever they appear: the one replies greet, and the full one a
        channel knows (an email's sender display name), so that a surname is masked too."""
        return [n for n in (self.customer_name, self.metadata.get("customer_full_name")) if n]


@dataclass
class IntentScore:
    intent: str
    probability: float


@dataclass
class Understanding:
    """What the customer wants, how sure we are, and whether a person must take over."""

    intent: str
    confidence: float
    top: list[IntentScore]  # the next candidates after ``intent``
    escalate: bool
    reason: str | None
    entities: list[Entity]
    sentiment: dict[str, Any] = field(default_factory=dict)  # {"label": ..., "score": ...}
    # Every request of the message, main first: {"intent", "probability", "sentence"} (the sentence
    # that asks it); one for a message with one request.
    intents: list[dict[str, Any]] = field(default_factory=list)
    evidence: str | None = None  # the sentence behind an escalation

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Reply:
    """What the agent decided and drafted for one message."""

    text: str
    intent: str
    confidence: float
    top: list[IntentScore]
    escalate: bool
    reason: str | None
    entities: list[Entity]
    source: str  # "composer" (grounded template) or "generator"
    passages: list[str]
    sentiment: dict[str, Any] = field(default_factory=dict)
    fallback_reason: str | None = None  # why a generated draft was replaced by the composer's
    intents: list[dict[str, Any]] = field(default_factory=list)  # as in Understanding
    evidence: str | None = None  # the sentence behind an escalation

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
