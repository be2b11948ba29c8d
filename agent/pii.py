"""Masking customer secrets (emails, IBANs, card and account numbers, phone numbers, sort codes, names)
in logs and records: the spans ``agent.entities.extract`` finds, and names where the wording marks them."""
from __future__ import annotations

import re

from .entities import extract

PII_KINDS = ("email", "iban", "card_number", "phone", "account_number", "sort_code")

# Names are masked only where the wording marks them as names (greetings, sign-offs, self-
# introductions): a general name recogniser would also eat merchants, cities and products that
# training data needs. A candidate is one to three capitalised words that are not common words.
_WORD = r"(?![a-zß-ÿ])[^\W\d_][^\W\d_'’-]*(?:[-'’][^\W\d_]+)*"  # starts with a capital (Latin)
_NAME = rf"(?P<name>(?:(?i:mr|mrs|ms|miss|mx|dr|prof)\.?\s+)?{_WORD}(?:[ \t]+{_WORD}){{0,2}})"
_NAME_CUES = [
    # "Hi Maria," / "Dear Mr Smith" / "Hello Anna!" at the start of a line or of a sentence.
    re.compile(rf"(?:^|(?<=[\n.!?])\s*)(?i:hi|hello|hey|dear|good\s+(?:morning|afternoon|evening))"
               rf"[ \t,]+{_NAME}[ \t]*(?=[,!:\n]|$)", re.M),
    # "Thanks,\nJohn Smith" / "Regards, Anna" / "Thanks for your help!\n\nTom": the name ends its line.
    re.compile(rf"(?:^|(?<=[.!?])[ \t]*)(?i:(?:many\s+)?thanks|thank\s+you|(?:(?:best|kind|warm)\s+)?regards"
               rf"|best(?:\s+wishes)?|cheers|sincerely|yours(?:\s+(?:sincerely|faithfully|truly))?"
               rf"|all\s+the\s+best|take\s+care)"
               rf"(?:[ \t]*[,.!-]?[ \t]*|[^\n]{{0,60}}\n\s*){_NAME}[ \t]*[.!]?[ \t]*$", re.M),
    # Calls: "my name is Anna Kowalski", "this is John speaking", "name: Jo Bloggs".
    re.compile(rf"(?i:\bmy\s+name\s+is|\bmy\s+name's|\bname\s*:)[ \t]+{_NAME}"),
    re.compile(rf"(?i:\bthis\s+is|\bit's|\bit\s+is)[ \t]+{_NAME}[ \t]+(?i:speaking|calling|here)\b"),
    re.compile(rf"(?i:^\s*(?:hi|hello|hey)[ \t,]+this\s+is)[ \t]+{_NAME}(?=[ \t]*[,.!]|[ \t]+(?i:from|and)\b)"),
]
# Capitalised words that follow the cues above without being names.
_NOT_NAMES = {
    "i", "im", "i'm", "we", "you", "all", "there", "team", "everyone", "everybody", "folks", "guys", "sir",
    "madam", "sirs", "support", "customer", "customers", "service", "services", "bank", "kestrel", "the",
    "again", "so", "very", "much", "a", "lot", "for", "in", "advance", "your", "my", "our", "help", "please",
    "thanks", "thank", "regards", "best", "cheers", "hello", "hi", "dear", "yes", "no", "ok", "okay",
    "morning", "afternoon", "evening", "today", "tomorrow", "yesterday", "just", "and", "or", "but", "is",
    "it", "this", "that", "can", "could", "would", "will", "what", "why", "how", "when", "where", "who",
    "not", "me", "us", "an", "sincerely", "faithfully", "truly", "wishes", "card",
    "account", "manager", "department", "desk", "agent", "agents", "speaking", "calling", "here", "from",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
}
_TITLE = re.compile(r"(?i:mr|mrs|ms|miss|mx|dr|prof)\.?\s+")


def names(text: str) -> list[tuple[int, int]]:
    """Spans of personal names that a greeting, sign-off or self-introduction marks as names."""
    spans = []
    for cue in _NAME_CUES:
        for m in cue.finditer(text):
            start, end = m.span("name")
            title = _TITLE.match(m.group("name"))
            words = list(re.finditer(r"\S+", m.group("name")[title.end() if title else 0:]))
            kept = 0  # the leading words that can be a name: "Anna" of "my name is Anna I lost ..."
            while kept < len(words) and words[kept].group()[0].isupper() \
                    and words[kept].group().lower() not in _NOT_NAMES:
                kept += 1
            if kept:
                spans.append((start, start + (title.end() if title else 0) + words[kept - 1].end()))
    return spans


def mask_pii(text: str, known_names: tuple[str, ...] | list[str] = ()) -> str:
    """``text`` with card numbers, IBANs, emails, phone numbers, account numbers, sort codes and personal
    names replaced by typed placeholders ([CARD_NUMBER], [IBAN], [EMAIL], [PHONE], [ACCOUNT_NUMBER],
    [SORT_CODE], [NAME]). ``known_names`` (e.g. the sender's
    name from an email header) are masked wherever they appear, not only where a cue marks them."""
    spans = [(e.start, e.end, e.kind.upper()) for e in extract(text) if e.kind in PII_KINDS]
    spans += [(s, e, "NAME") for s, e in names(text)]
    for name in filter(None, (n.strip() for n in known_names)):
        for part in {name, *re.findall(r"\w[\w'-]*", name)} - {""}:  # "Smith, Anna": Smith and Anna too
            if len(part) > 1:
                pattern = re.compile(rf"(?<!\w){re.escape(part)}(?!\w)")
                spans += [(m.start(), m.end(), "NAME") for m in pattern.finditer(text)]
    chosen, taken = [], [False] * len(text)
    for start, end, kind in sorted(spans, key=lambda s: (s[0], s[0] - s[1])):
        if not any(taken[start:end]):  # the longest span at a position wins; overlapping ones are dropped
            taken[start:end] = [True] * (end - start)
            chosen.append((start, end, kind))
    for start, end, kind in reversed(chosen):
        text = text[:start] + f"[{kind}]" + text[end:]
    return text
