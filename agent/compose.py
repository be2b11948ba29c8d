"""The grounded composer: a reply built only from approved text and the customer's own details.

Deterministic and fast, so it is always available, and it cannot invent a fee or a date: every
number in its output comes from the knowledge base or from the customer's message.
"""
from __future__ import annotations

from .knowledge import Entry, KnowledgeBase
from .types import Entity

APOLOGY = "I'm sorry for the trouble this has caused."
HOLDING_REPLY = ("Thank you for getting in touch. I want to make sure you get the right answer, so I have "
                 "passed your message to a member of our team, who will get back to you shortly.")


def compose(entry: Entry | None, entities: list[Entity], channel: str, business: dict[str, str],
            customer_name: str | None = None, apologise: bool = False) -> str:
    """The reply for ``entry``; with no entry (escalation) a holding reply for a person to complete.

    ``apologise`` (an upset customer) opens with an apology before anything else.
    """
    greeting = f"Hi {customer_name}," if customer_name else "Hello,"
    thanks = "Thank you for getting in touch."
    if channel == "call":  # spoken: one flowing paragraph
        greeting, thanks = f"{greeting} thank you for calling.", ""
    parts = [greeting, APOLOGY if apologise else ""]
    if entry is None:
        parts.append(HOLDING_REPLY.replace("Thank you for getting in touch. ", "") if channel == "call" else HOLDING_REPLY)
    else:
        parts.append(thanks)
        parts.extend(_personal_sentences(entry, entities))
        parts.append(entry.answer)
    phone = business.get("phone")
    if channel == "call":
        parts.append("Is there anything else I can help you with today?")
        return " ".join(p for p in parts if p)
    if phone:
        parts.append(f"If anything is still unclear, just reply to this email or call us on {phone}.")
    body = parts[0] + "\n\n" + " ".join(p for p in parts[1:] if p)
    return f"{body}\n\nKind regards,\n{business.get('team', 'Customer Support')}"


def _personal_sentences(entry: Entry, entities: list[Entity]) -> list[str]:
    first = {}
    for e in entities:
        first.setdefault(e.kind, e.value)
    return [template.format(**{slot: first[slot]}) for slot, template in entry.personal.items() if slot in first]
