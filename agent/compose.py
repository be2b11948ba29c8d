"""The grounded composer: a reply built only from approved text and the customer's own details.

Deterministic and fast, so it is always available, and it cannot invent a fee or a date: every
number in its output comes from the knowledge base or from the customer's message.
"""
from __future__ import annotations

import re

from .entities import is_deadline
from .knowledge import Entry
from .types import Entity

APOLOGY = "I'm sorry for the trouble this has caused."
HOLDING_REPLY = ("Thank you for getting in touch. I want to make sure you get the right answer, so I have "
                 "passed your message to a member of our team, who will get back to you shortly.")


def compose(entry: Entry | None, entities: list[Entity], channel: str, business: dict[str, str],
            customer_name: str | None = None, apologise: bool = False) -> str:
    """The reply for ``entry``; with no entry (escalation) a holding reply for a person to complete.

    ``apologise`` (an upset customer) opens with an apology before anything else.
    """
    return frame(body(entry, entities, channel, apologise), channel, business, customer_name)


def body(entry: Entry | None, entities: list[Entity], channel: str, apologise: bool = False) -> str:
    """The middle of a reply: what a generator rewrites, between the greeting and the closing."""
    parts = [APOLOGY if apologise else ""]
    if entry is None:
        parts.append(HOLDING_REPLY.replace("Thank you for getting in touch. ", "") if channel == "call" else HOLDING_REPLY)
    else:
        parts.append("" if channel == "call" else "Thank you for getting in touch.")
        parts.extend(_personal_sentences(entry, entities))
        parts.append(entry.answer)
    return " ".join(p for p in parts if p)


def also_asked(entries: list[Entry], entities: list[Entity], channel: str) -> str:
    """The answers to a message's further requests, each introduced by what it answers."""
    parts = []
    for entry in entries:
        topic = entry.title if entry.title[1:2].isupper() else entry.title[:1].lower() + entry.title[1:]
        answer = " ".join([*_personal_sentences(entry, entities), entry.answer])
        parts.append(f"You also asked about {topic}: {answer}")
    return ("\n\n" if channel != "call" and parts else "") + " ".join(parts) if parts else ""


_CALL_CLOSING = "Is there anything else I can help you with today?"
_EMAIL_CLOSING = "If anything is still unclear, just reply to this email or call us on"


def frame(middle: str, channel: str, business: dict[str, str], customer_name: str | None = None) -> str:
    """Greeting (with the customer's name where known) and closing around ``middle``, per channel."""
    greeting = f"Hi {customer_name}," if customer_name else "Hello,"
    if channel == "call":  # spoken: one flowing paragraph
        return f"{greeting} thank you for calling. {middle} {_CALL_CLOSING}"
    phone = business.get("phone")
    closing = f" {_EMAIL_CLOSING} {phone}." if phone else ""
    return f"{greeting}\n\n{middle}{closing}\n\nKind regards,\n{business.get('team', 'Customer Support')}"


_SIGN_OFF = re.compile(r"^(?:kind regards|best regards|regards|best wishes|best|many thanks|thanks|thank you|"
                       r"sincerely|yours sincerely|cheers)\b[ ,.!]*$", re.I)
_CALL_OPENING = re.compile(r"^(?:hi|hello|good (?:morning|afternoon|evening))\b[^.?!]{0,60}?,? thank you for calling\.\s*", re.I)


def unframe(reply: str, channel: str) -> str:
    """The middle of a reply written by a person or by ``frame``: its greeting and closing taken off.

    Lenient, for replies people corrected: a short first paragraph ending in a comma is a greeting,
    and everything from a sign-off line ("Kind regards", "Thanks,") on is the closing.
    """
    if channel == "call":
        middle = _CALL_OPENING.sub("", reply.strip())
        return middle.removesuffix(_CALL_CLOSING).strip()
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", reply.strip()) if p.strip()]
    if paragraphs and paragraphs[0].endswith(",") and len(paragraphs[0].split()) <= 6:
        paragraphs = paragraphs[1:]
    for i, paragraph in enumerate(paragraphs):
        if _SIGN_OFF.match(paragraph.splitlines()[0].strip()):
            paragraphs = paragraphs[:i]
            break
    middle = " ".join(" ".join(p.split()) for p in paragraphs)
    return re.sub(rf"\s*{re.escape(_EMAIL_CLOSING)} [^.]*\.$", "", middle)


def grounding(entry: Entry, entities: list[Entity]) -> str:
    """What a generator works from: the entry's sentences for the customer's details, then the answer."""
    return " ".join([*_personal_sentences(entry, entities), entry.answer])


def acknowledged(entry: Entry, entities: list[Entity]) -> list[str]:
    """The customer's details a reply from ``entry`` repeats: the first of each kind it has a sentence for."""
    return list(_first_of_each_kind(entry, entities).values())


def _first_of_each_kind(entry: Entry, entities: list[Entity]) -> dict[str, str]:
    first: dict[str, str] = {}
    for e in entities:
        # A deadline ("by Friday") is not the date the entry's sentences speak of ("you ordered it on ...").
        if e.kind in entry.personal and not is_deadline(e):
            first.setdefault(e.kind, e.value)
    return first


# Dates that take no "on": "ordered it yesterday" or "two weeks ago", not "ordered it on yesterday".
_RELATIVE_DATE = re.compile(r"(?:yesterday|today|tomorrow|tonight|this|last|next)\b|.*\bago$", re.I)


def _personal_sentences(entry: Entry, entities: list[Entity]) -> list[str]:
    first = _first_of_each_kind(entry, entities)
    return [_fill(template, slot, first[slot]) for slot, template in entry.personal.items() if slot in first]


def _fill(template: str, slot: str, value: str) -> str:
    if slot == "date" and _RELATIVE_DATE.match(value):
        template = template.replace("on {date}", "{date}")
    return template.format(**{slot: value})
