"""Entity detection: amounts, references, dates, card digits, emails, phone numbers, IBANs, account
numbers and sort codes.

Detectors are ordered from most to least specific; a span taken by one is not offered to the
next, so an IBAN is never also read as a phone number. The same detectors drive PII masking
(``agent.pii``).
"""
from __future__ import annotations

import re

from .types import Entity

CURRENCY_SYMBOLS = {"£": "GBP", "€": "EUR", "$": "USD", "¥": "JPY", "₹": "INR", "A$": "AUD", "C$": "CAD", "NZ$": "NZD",
                    "HK$": "HKD", "S$": "SGD", "US$": "USD"}
_SYMBOL = "(?-i:" + "|".join(re.escape(k) for k in sorted(CURRENCY_SYMBOLS, key=len, reverse=True)) + ")"
CURRENCY_WORDS = {
    "gbp": "GBP", "pound": "GBP", "pounds": "GBP", "quid": "GBP",
    "eur": "EUR", "euro": "EUR", "euros": "EUR",
    "usd": "USD", "dollar": "USD", "dollars": "USD", "bucks": "USD", "us dollars": "USD",
    "chf": "CHF", "francs": "CHF", "pln": "PLN", "zloty": "PLN", "yen": "JPY", "rupees": "INR",
}
# Codes that are also English words in lower case ("try", "cad") count only in capitals.
CURRENCY_CODES = ("AUD", "CAD", "NZD", "JPY", "CNY", "HKD", "SGD", "INR", "SEK", "NOK", "DKK", "ZAR", "MXN", "AED",
                  "TRY")
SYMBOL_FOR = {"GBP": "£", "EUR": "€", "USD": "$"}

# Amounts as people write them: 1,234.56 and 1 234.56, the continental 1.234,56, 1.000, 1 234,56 and
# 45,99, plain 40. Order matters (the first alternative that fits wins): a comma followed by one or
# two digits is a decimal comma, by three a thousands separator; a dot followed by groups of three
# digits separates thousands.
_NUMBER = (r"\d{1,3}(?:[.\s]\d{3})+,\d{1,2}(?!\d)|\d{1,3}(?:\.\d{3})+(?!\d|[.,]\d)"
           r"|\d{1,3}(?:[,\s]\d{3})+(?:\.\d{1,2})?|\d+,\d{1,2}(?!\d)|\d+(?:\.\d{1,2})?")
_CODES = "(?-i:" + "|".join(CURRENCY_CODES) + ")"
_CURRENCY_WORD = "|".join(sorted(CURRENCY_WORDS, key=len, reverse=True)) + "|" + _CODES
# Amounts said rather than written, as speech recognisers often leave them: "fifty pounds",
# "two hundred quid", "one thousand two hundred and fifty euros".
NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split())} | {w: 10 * i for i, w in enumerate(
        "twenty thirty forty fifty sixty seventy eighty ninety".split(), 2)}
SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_NUMBER_WORD = "|".join(sorted([*NUMBER_WORDS, *SCALES], key=len, reverse=True))
_SPELLED = rf"(?:a\s+(?=hundred|thousand|million))?(?:{_NUMBER_WORD})(?:(?:\s+and\s+|[\s-]+)(?:{_NUMBER_WORD}))*"
# Pence and cents after the pounds, dollars or euros, as said: "forty two pounds fifty", "twenty dollars and
# fifty cents"; not a count that follows ("ten pounds two weeks ago", "fifty pounds one time").
_UNITS = "one|two|three|four|five|six|seven|eight|nine"
_UNDER_100 = (rf"(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)(?:[\s-]+(?:{_UNITS}))?|ten|eleven|twelve"
              rf"|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|{_UNITS}")
_MINOR_UNIT = r"(?:pence|p|cents?)\b"
_MINOR = (rf"\s+and\s+(?P<minor>{_UNDER_100})\s+{_MINOR_UNIT}"
          rf"|\s+(?P<minor2>{_UNDER_100})\b(?:\s+{_MINOR_UNIT})?"
          rf"(?![\s-]+(?:{_NUMBER_WORD}|times?|days?|weeks?|months?|years?"
          rf"|hours?|minutes?|mins?|seconds?|of|more|extra|percent|per|cards?|transactions?|payments?|charges?"
          rf"|people|items?|euros?|pounds?|dollars?|quid|bucks)\b)")
_MONTHS = ("january|february|march|april|may|june|july|august|september|october|november|december|"
           "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec")
_DAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
# Ordinals as said, and as speech recognisers often leave them: "the fifth of June", "on the twenty-second".
_ORDINAL_WORDS = ("(?:twenty[- ]|thirty[- ])?(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth)"
                  "|tenth|eleventh|twelfth|thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth"
                  "|nineteenth|twentieth|thirtieth")

# What may stand between a question and its answer in a dialogue: the rest of the question's line (no digits,
# no full stop, no other turn), the answering speaker's label and a few fillers ("... of the card? Customer:
# yeah it's 3456"), so that a number from a later turn is not taken for the answer.
_ANSWER = (r"(?:(?!\b(?:agent|customer|caller|client|me)\s*:)[^\d\n.!?]){0,60}?[?.:]?\s*"
           r"(?:(?:customer|caller|client|me)\s*:)?"
           r"(?:[\s,]*\b(?:yeah|yes|yep|sure|ok|okay|uh|um|erm|so|right|it's|its|it\s+is|that's|that\s+is|they're"
           r"|they\s+are)\b)*[\s,]*")

PATTERNS: list[tuple[str, re.Pattern]] = [
    ("email", re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"
                         # said aloud, as in a call: "mark dot allen at example dot com" (a known ending, so not
                         # "I was at the shop dot")
                         r"|\b(?!(?:works?|worked|working|shop(?:ped|ping)?|ordered|bought|paid|booked|looking|is|was|are"
                         r"|were|me|us|him|her|them|it|job)\s)"
                         rf"[a-z0-9]+(?:\s+(?:{_NUMBER_WORD}))*"
                         rf"(?:\s+(?:dot|underscore)\s+[a-z0-9]+(?:\s+(?:{_NUMBER_WORD}))*)*"
                         r"\s+at\s+[a-z0-9-]+(?:\s+dot\s+[a-z0-9-]+)*"
                         r"\s+dot\s+(?:com|org|net|co|uk|io|ie|de|fr|es|it|nl|eu|edu|gov|info|me)\b", re.I)),
    # Any case ("gb29 nwbk ..." in a chat): the mod-97 check below keeps out what only looks like one.
    # Not "RF": a creditor reference (ISO 11649) has the same check digits, and is a reference.
    ("iban", re.compile(r"\b(?!RF)[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b", re.I)),
    ("card_number", re.compile(r"\b(?:\d[ -]?){12,18}\d\b")),
    ("card_last4", re.compile(
        r"\b(?:card\s+)?(?:ending|ends)\s+(?:in|with)?\s*(\d{4})\b|\blast\s+(?:4|four)\s*(?:are|is|:)\s*(\d{4})\b"
        # "the last four digits of my card are 3456", and the answer to the question in a dialogue
        rf"|\blast\s+(?:4|four)\s+(?:digits|numbers|of\s+(?:the|your|my)\s+(?:\w+\s+)?card)\b{_ANSWER}"
        r"(\d{4})\b(?![.,]\d)"
        r"|(?<![\w*•#])(?:[*xX•#]{4}[\s-]?){1,3}(\d{4})\b", re.I)),  # a masked number: ****1234, xxxx-xxxx-xxxx-5678
    # UK account numbers (8 digits) and sort codes, only where the words say so: bare, they are any number.
    ("account_number", re.compile(r"\b(?:account|acct|a/c)\s*(?:number|no\.?|num|#)?\s*(?:is|:)?\s*(?P<acct>\d{8})\b",
                                  re.I)),
    ("sort_code", re.compile(r"\bsort\s*code\s*(?:is|:)?\s*(?P<sort>\d{2}([- ]?)\d{2}\2\d{2})\b", re.I)),
    ("amount", re.compile(
        rf"(?P<sym>{_SYMBOL})\s?(?P<n1>{_NUMBER})(?:\s?(?P<k1>k)\b)?"
        rf"|\b(?P<code>GBP|EUR|USD|CHF|PLN|{_CODES})\s?(?P<n2>{_NUMBER})"
        rf"|\b(?P<n3>{_NUMBER})(?:\s?(?P<k3>k)\b)?\s?(?P<word>{_CURRENCY_WORD})\b"
        rf"|\b(?P<n4>{_NUMBER})\s?(?P<sym4>[£€$¥₹])(?!\s?\d)"  # 30€; not the 5 of "5 $10 notes"
        rf"|\b(?P<pence>\d{{1,2}})p\b"  # 50p
        rf"|\b(?P<spelled>{_SPELLED})\s+(?P<word5>{_CURRENCY_WORD})\b(?:{_MINOR})?"
        rf"|\b(?P<pence_said>{_UNDER_100})\s+pence\b", re.I)),
    ("reference", re.compile(
        r"\b(?:order|reference|ref|transaction|case|ticket|invoice|booking|payment|customer(?!\s*:)|claim|complaint"
        r"|tracking|parcel|receipt|confirmation|arn)\s*"
        r"(?:number|no\.?|num|id|#|code)?\s*(?:is|was|:|#|-)?\s*#?\s*"
        r"(?P<ref>(?=[A-Z0-9/-]*\d)(?!\d+/)[A-Z0-9][A-Z0-9/-]{3,}[A-Z0-9])\b"
        # "the tracking number for the replacement card is ...", "the reference on my side was ..."
        r"|\b(?:order|reference|ref|booking|tracking|confirmation|case|ticket)\s*(?:number|no\.?|num|id|code)?"
        r"\s+(?:on|for|of|in|from)\s+(?:\w+\s+){1,3}?(?:is|was)\s*:?\s*#?\s*"
        r"(?P<ref2>(?=[A-Z0-9/-]*\d)(?!\d+/)[A-Z0-9][A-Z0-9/-]{3,}[A-Z0-9])\b"
        r"|\b(?P<bare>[A-Z]{2,5}-\d{3,}(?:-[A-Z0-9]+)*|(?-i:RF)\d{2}[A-Z0-9]{1,21}"
        # a code in capitals with at least three digits, cue or not ("it's R7729-K"; a code spelled out in a
        # call, "t x seven seven three nine", once written out), and a UUID (a SWIFT UETR, a transaction id)
        # (not one shaped like a UK postcode read out, "m one four five t q", nor like an IBAN that failed its check)
        r"|(?-i:(?=(?:[A-Z-]*\d){3})(?=[A-Z0-9-]{5})(?![A-Z]{1,2}\d[A-Z\d]?\d[A-Z]{2}\b|[A-Z]{2}\d{2}[A-Z0-9]{11,30}\b)"
        r"[A-Z][A-Z0-9]*\d[A-Z0-9]*(?:-[A-Z0-9]+)*)"
        r"|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b", re.I)),
    ("phone", re.compile(r"(?<![\w+])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[.-])\d{3}[.-]\d{4}\b"  # North American
                         # a North American number without separators or its area code ("555-0134", "three one two five
                         # five five ..." in a call), where the words say it is one
                         rf"|\b(?:number|phone|call|ring|text|cell|mobile|reach)\b{_ANSWER}"
                         r"(?P<local>\d{3}-?\d{4}|\d{10})\b(?![-.,]\d)"
                         r"|(?<![\w+])\+\d{1,3}[\s-]?\d{1,4}(?:[\s-]?\d{2,4}){1,4}\b"  # +61 2 5550 8812, +33 6 12 34 56 78
                         r"|(?<![\w+])(?:\(0\d{2,4}\)\s?|0)\d{2,4}(?:[\s-]?\d{2,4}){1,3}\b")),
    ("date", re.compile(
        rf"\b\d{{4}}-\d{{2}}-\d{{2}}\b|\b\d{{4}}/\d{{1,2}}/\d{{1,2}}\b|\b\d{{1,2}}[/.]\d{{1,2}}[/.]\d{{2,4}}\b"
        rf"|\b(?:(?:{_DAYS}),?\s+(?:the\s+)?)?\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{_MONTHS})\b(?:\s+\d{{4}})?"
        rf"|\b(?:(?:{_DAYS}),?\s+(?:the\s+)?)?(?:{_ORDINAL_WORDS})\s+of\s+(?:{_MONTHS})\b(?:\s+\d{{4}})?"
        rf"|\b(?:{_MONTHS})\s+the\s+(?:{_ORDINAL_WORDS})\b"
        rf"|\b(?:{_MONTHS})\s+\d{{1,2}}(?:st|nd|rd|th)?\b(?:,?\s+\d{{4}})?"
        # "on Thursday": but "on Thursday 6 March" is the date above, weekday included
        rf"|\b(?:last|this|next|on)\s+(?:{_DAYS}|mon|tues?|wed|weds|thur?s?|fri|sat|sun|week|month)\b"
        rf"(?!,?\s+(?:the\s+)?\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{_MONTHS})\b)"
        rf"|\b(?:this|yesterday|tomorrow)\s+(?:morning|afternoon|evening)\b|\b(?:tonight|last\s+night)\b"
        rf"|\b(?:yesterday|today|tomorrow)\b|\b(?:{_DAYS})\b"  # "by Friday", "called Monday"
        rf"|\b(?:a|an|one|two|three|four|five|six|seven|eight|nine|ten|a\s+few|a\s+couple\s+of|\d{{1,2}})\s+"
        rf"(?:days?|weeks?|months?)\s+ago\b"
        # "on the 5th", not "the 3rd time I've called": a preposition before, no noun after
        rf"|\b(?:on|since|by|until|from|before|after)\s+(?P<ordinal>the\s+(?:\d{{1,2}}(?:st|nd|rd|th)|{_ORDINAL_WORDS}))\b"
        rf"(?!\s+(?:of\s+)?(?:{_MONTHS})\b)"  # "the 3rd of May" is the day-and-month date above
        rf"(?!\s+(?:time|attempt|try|call|go|one|person|day|week|month|year|payment|charge|transaction|card"
        rf"|transfer|withdrawal|instal?ment|floor|page|line|digit)s?\b)",
        re.I)),
]


_DEADLINE_WORDS = "by|before|until|till"
_DEADLINE = re.compile(rf"\b(?:{_DEADLINE_WORDS})\s+(?:the\s+)?$", re.I)


def is_deadline(entity: Entity) -> bool:
    """A date the customer needs something by ("by Friday"), not one on which something happened:
    ``extract`` keeps the deadline's word in the value."""
    return entity.kind == "date" and re.match(rf"(?:{_DEADLINE_WORDS})\s", entity.value, re.I) is not None

# The part of a match that is the entity, where the pattern also matches its cue ("card ending", "sort code").
VALUE_GROUPS = {"reference": ("ref", "ref2", "bare"), "card_last4": (1, 2, 3, 4), "account_number": ("acct",),
                "sort_code": ("sort",), "date": ("ordinal",), "phone": ("local",)}


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_mod97(rearranged: str) -> int:
    """ISO 13616's check: letters as numbers (A = 10 ... Z = 35), the whole read as one number, mod 97;
    ``rearranged`` is the IBAN with its first four characters moved to the end."""
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97


def iban_valid(text: str) -> bool:
    compact = text.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    return iban_mod97(compact[4:] + compact[:4]) == 1


def _amount_value(m: re.Match) -> str:
    if m.group("pence"):
        return f"£{int(m.group('pence')) / 100:.2f}"
    word = m.group("word") or m.group("word5") or ""
    currency = (CURRENCY_SYMBOLS.get(m.group("sym") or m.group("sym4") or "") or (m.group("code") or "").upper()
                or CURRENCY_WORDS.get(word.lower()) or word)
    if m.group("pence_said"):
        return f"£{spelled_number(m.group('pence_said')) / 100:.2f}"
    if m.group("spelled"):
        minor = m.group("minor") or m.group("minor2")
        return _format_amount(spelled_number(m.group("spelled")) + (spelled_number(minor) / 100 if minor else 0),
                              currency)
    number = m.group("n1") or m.group("n2") or m.group("n3") or m.group("n4")
    if re.search(r",\d{1,2}$", number) or re.fullmatch(r"\d{1,3}(?:\.\d{3})+", number):  # 45,99 1.234,56 1.000
        number = re.sub(r"[.\s]", "", number).replace(",", ".")
    return _format_amount(float(re.sub(r"[,\s]", "", number)) * (1000 if m.group("k1") or m.group("k3") else 1),
                          currency)


def _said_email(said: str) -> str:
    """"anna dot kowalski eighty eight at gmail dot com" -> "anna.kowalski88@gmail.com": the number words
    that end a part are written as digits (one by one where each is a digit, else as one number)."""
    parts = re.split(r"\s+(dot|underscore|at)\s+", said.lower())
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append({"dot": ".", "underscore": "_", "at": "@"}[part])
            continue
        words = part.split()
        k = len(words)
        while k and (words[k - 1] in NUMBER_WORDS or words[k - 1] in SCALES):
            k -= 1
        number = words[k:]
        digits = "".join(DIGIT_WORDS[w] for w in number) if all(w in DIGIT_WORDS for w in number) \
            else str(spelled_number(" ".join(number)))
        out.append("".join(words[:k]) + digits)
    return "".join(out)


def _format_amount(amount: float, currency: str) -> str:
    shown = f"{amount:,.2f}" if amount % 1 else f"{amount:,.0f}"
    return f"{SYMBOL_FOR[currency]}{shown}" if currency in SYMBOL_FOR else f"{shown} {currency}"


def spelled_number(text: str) -> int:
    """"two hundred and fifty" -> 250: units and tens add up, a scale multiplies what came before it."""
    total = current = 0
    for word in re.findall(r"[a-z]+", text.lower()):
        if word in NUMBER_WORDS:
            current += NUMBER_WORDS[word]
        elif word == "hundred":
            current = (current or 1) * 100
        elif word in SCALES:
            total += (current or 1) * SCALES[word]
            current = 0
    return total + current


# Digits said one by one, as call transcripts often have them: "oh seven seven zero zero nine double oh",
# and codes spelled out letter by letter among them: "case number c r nine four four two one".
DIGIT_WORDS = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
               "seven": "7", "eight": "8", "nine": "9"}
_SPOKEN_TOKEN = re.compile(rf"(?:(double|triple)\s+)?({'|'.join(DIGIT_WORDS)}|(?<!['’])[a-z](?!['’]))\b", re.I)
_SPOKEN_RUN = re.compile(rf"\b{_SPOKEN_TOKEN.pattern}(?:[\s,-]+{_SPOKEN_TOKEN.pattern})+", re.I)
_WORD_LETTERS = ("a", "i")  # single letters that are also words ("it's a four digit code", "... nine i think")


def _spoken_code(run: str) -> tuple[str, int, int] | None:
    """A run of spoken digits and letters written out ("c r nine four" -> "CR94"), with its span in
    ``run``; None where it is not a number or code: fewer than four digits alone, or letters with fewer
    than two digits, under five characters, or none but "a" and "i"."""
    tokens = list(_SPOKEN_TOKEN.finditer(run))

    def word_letter(t: re.Match) -> bool:
        return not t.group(1) and t.group(2).lower() in _WORD_LETTERS

    # a trailing "i" is the next sentence's ("... nine i think"); a trailing "a" ends a code with other letters
    # ("w q five five eight one a") but not a number ("one two three four a month")
    spelled = any(t.group(2).lower() not in DIGIT_WORDS and not word_letter(t) for t in tokens)
    while tokens and word_letter(tokens[-1]) and (tokens[-1].group(2).lower() == "i" or not spelled):
        tokens.pop()
    while len(tokens) > 1 and word_letter(tokens[0]) and tokens[1].group(2).lower() in DIGIT_WORDS:
        tokens.pop(0)
    chars = "".join((DIGIT_WORDS.get(t.group(2).lower()) or t.group(2).upper())
                    * {"double": 2, "triple": 3}.get((t.group(1) or "").lower(), 1) for t in tokens)
    digits = sum(c.isdigit() for c in chars)
    letters = [t.group(2).lower() for t in tokens if t.group(2).lower() not in DIGIT_WORDS]
    if not letters and digits >= 4 or (letters and digits >= 2 and len(chars) >= 5
                                       and any(x not in _WORD_LETTERS for x in letters)):
        return chars, tokens[0].start(), tokens[-1].end()
    return None


def _digits_view(text: str) -> tuple[str, list[tuple[int, int]] | None]:
    """``text`` with runs of at least four digits said one by one, and codes spelled among them, written
    as digits and capitals, and for each of its characters the span of ``text`` it stands for (None where
    nothing was rewritten)."""
    parts, source, last = [], [], 0
    for m in _SPOKEN_RUN.finditer(text):
        if (code := _spoken_code(m.group())) is None:
            continue
        chars, start, end = code[0], m.start() + code[1], m.start() + code[2]
        parts += [text[last:start], chars]
        source += [(i, i + 1) for i in range(last, start)] + [(start, end)] * len(chars)
        last = end
    if not parts:
        return text, None
    parts.append(text[last:])
    source += [(i, i + 1) for i in range(last, len(text))]
    return "".join(parts), source


def extract(text: str) -> list[Entity]:
    """All entities in ``text``, in order of position. The detectors read digits said one by one as
    digits; an entity's ``text`` and span are still the words as written, and its value the digits."""
    original, (text, source) = text, _digits_view(text)
    taken = [False] * len(text)
    found: list[Entity] = []
    for kind, pattern in PATTERNS:
        for m in pattern.finditer(text):
            start, end = m.span(next((g for g in VALUE_GROUPS.get(kind, ()) if m.group(g)), 0))
            if any(taken[start:end]):
                continue
            raw = text[start:end]
            value = raw
            if kind == "card_number":
                digits = re.sub(r"\D", "", raw)
                if not luhn_valid(digits):
                    continue
                value = "**** " + digits[-4:]  # never repeat a full card number back
            elif kind == "iban":
                # The optional short last group may have taken the next word ("... 1332 and"): drop it.
                while not iban_valid(raw) and " " in raw:
                    raw = raw.rsplit(" ", 1)[0]
                if not iban_valid(raw):
                    continue
                end = start + len(raw)
                value = raw.replace(" ", "").upper()
            elif kind == "amount":
                value = _amount_value(m)
            elif kind == "phone" and len(re.sub(r"\D", "", raw)) < (7 if m.group("local") else 9):
                continue
            elif kind == "reference":
                value = raw.upper()
            elif kind == "date":
                value = re.sub(r"(?i)^on\s+", "", raw)  # "on Monday" marks a date; the date is "Monday"
                if deadline := _DEADLINE.search(text[:start]):  # "by Friday": when something is due, not when it happened
                    value = text[deadline.start():start].lower() + value
            elif kind == "email" and "@" not in raw:
                value = _said_email(raw)
            elif kind == "sort_code":
                digits = re.sub(r"\D", "", raw)
                value = f"{digits[:2]}-{digits[2:4]}-{digits[4:]}"
            taken[start:end] = [True] * (end - start)
            if source is not None:  # back to the words as written
                start, end = source[start][0], source[end - 1][1]
                raw = original[start:end]
            found.append(Entity(kind=kind, text=raw, value=value, start=start, end=end))
    return sorted(found, key=lambda e: e.start)


# Masking lived here before agent.pii held it; resolved on first use, so that importing this module
# does not import agent.pii (which imports this one).
def __getattr__(name: str):
    if name in ("PII_KINDS", "names", "mask_pii"):
        from . import pii

        return getattr(pii, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
