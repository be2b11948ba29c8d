"""Checks on a generated draft before anyone sees it. Any failure sends the composer's draft instead.

A generated reply may only state numbers the customer or the approved passage stated, must keep the
passage's key facts and acknowledge the customer's details where the composer would, must not leave a
template slot unfilled, and must still be about the intent it answers (the draft run back through
the intent classifier).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_SLOT = re.compile(r"\{[^{}\s]*\}|\[(?:[A-Z_]+)\]|<[a-z_]+>")


def numbers(text: str) -> set[str]:
    """Every number in ``text``, normalised (thousands separators and trailing ``.00`` removed)."""
    found = set()
    for raw in _NUMBER.findall(text):
        value = raw.rstrip(".,").replace(",", "")
        found.add(value[:-3] if value.endswith(".00") else value)
    return found


def unsupported_numbers(draft: str, sources: Sequence[str]) -> list[str]:
    """Numbers in ``draft`` that appear in none of ``sources`` (invented fees, dates, references)."""
    allowed = set().union(*(numbers(s) for s in sources)) if sources else set()
    return sorted(numbers(draft) - allowed)


def check(draft: str, sources: Sequence[str], facts: Sequence[str], intent: str,
          draft_intents: Callable[[str], Sequence[str]] | None = None, details: Sequence[str] = ()) -> str | None:
    """Why ``draft`` must not be used, or None when it passes every guard.

    ``sources``: the customer's text and the retrieved passage; ``facts``: exact phrases of the
    passage a reply must keep; ``draft_intents``: the classifier's top intents for a text;
    ``details``: the customer's own details (amount, reference, ...) the reply must acknowledge.
    """
    if not draft.strip():
        return "generator guard: empty draft"
    if slot := _SLOT.search(draft):
        return f"generator guard: unfilled slot {slot.group()}"
    if invented := unsupported_numbers(draft, sources):
        return f"generator guard: numbers not in the message or the passage: {', '.join(invented)}"
    if missing := [f for f in facts if f.lower() not in draft.lower()]:
        return f"generator guard: key facts missing: {'; '.join(missing)}"
    if missing := [d for d in details if d not in draft]:
        return f"generator guard: the customer's details missing: {'; '.join(missing)}"
    if draft_intents is not None and intent not in draft_intents(draft):
        return f"generator guard: the draft does not read as '{intent}'"
    return None
