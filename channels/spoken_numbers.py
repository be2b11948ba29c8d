"""Numbers in a transcript as people said them.

Whisper writes a code said digit by digit in many ways ("4-8-2-1-3", "4, 8, 2, 1, 3", "four eight two one
three") and an amount said as "forty-two pounds fifty" as "42 pounds 50", which reads as £42. Here:

* four or more digits said one by one (or three joined by hyphens) become one number: "48213";
  "double five" is "55" and "oh" among digits is "0";
* pounds, dollars or euros with the pence or cents said after them become one amount: "£42.50",
  "$20.05"; number words are read as well ("forty two pounds fifty").

Anything else is left as Whisper wrote it.
"""
from __future__ import annotations

import re

from agent.entities import DIGIT_WORDS, spelled_number

_DIGIT = rf"(?:(?:double|triple)\s+)?(?:\d|{'|'.join(DIGIT_WORDS)})"
# Single digits separated by spaces, commas or hyphens: four digits or more, or three joined by hyphens.
_RUN = re.compile(rf"(?<![\w.,-]){_DIGIT}(?:(?:[\s,]+|-){_DIGIT}){{2,}}(?![\w-]|[.,]\d)", re.I)
_TOKEN = re.compile(rf"(?:(double|triple)\s+)?(\d|{'|'.join(DIGIT_WORDS)})", re.I)

_MAJOR = {"pound": "£", "pounds": "£", "quid": "£", "dollar": "$", "dollars": "$", "euro": "€", "euros": "€"}
_MINOR_UNITS = r"(?:pence|p|cents?)"
_WORDS = (r"(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen"
          r"|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety"
          r"|hundred|thousand|and|a)")
_COUNT = rf"(?:\d[\d,]*|{_WORDS}(?:[\s-]+{_WORDS})*)"
_UNDER_100 = (r"(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)(?:[\s-]+(?:one|two|three|four|five|six|seven"
              r"|eight|nine))?|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen"
              r"|one|two|three|four|five|six|seven|eight|nine")
_CENTS = rf"(?:\d{{1,2}}|{_UNDER_100})"
# "42 pounds 50", "£42 and 50p", "twenty dollars and five cents"; not "5 pounds 2 weeks ago" (a count follows).
_AMOUNT = re.compile(
    rf"(?P<sym>[£$€])?\b(?P<major>{_COUNT})\s*(?P<unit>{'|'.join(_MAJOR)})?(?:\s+and)?\s+(?P<minor>{_CENTS})"
    rf"(?:\s*(?P<minor_unit>{_MINOR_UNITS})\b)?(?![\w-]|\s+(?:{_WORDS}|\d|times?|days?|weeks?|months?|years?|of)\b)",
    re.I)


def normalise(text: str) -> str:
    """``text`` with codes said digit by digit joined and amounts said with their pence written as one."""
    return _AMOUNT.sub(_amount, _RUN.sub(_digits, text))


def _digits(m: re.Match) -> str:
    said, out = m.group(0), []
    for t in _TOKEN.finditer(m.group(0)):
        digit = t.group(2) if t.group(2).isdigit() else DIGIT_WORDS[t.group(2).lower()]
        out.append(digit * {"double": 2, "triple": 3}.get((t.group(1) or "").lower(), 1))
    digits = "".join(out)
    return digits if len(digits) >= 4 or re.fullmatch(r"\d(?:-\d)+", said) else said


def _amount(m: re.Match) -> str:
    symbol = m.group("sym") or _MAJOR.get((m.group("unit") or "").lower())
    # Pence need a currency: "£42 50", "42 pounds 50" or "£42 and 50p", never two bare numbers.
    if not symbol or (m.group("sym") and m.group("unit")) or not (m.group("unit") or m.group("minor_unit")
                                                                  or m.group("sym")):
        return m.group(0)
    major, minor = _value(m.group("major")), _value(m.group("minor"))
    if major is None or minor is None or minor >= 100:
        return m.group(0)
    return f"{symbol}{major:,}.{minor:02d}"


def _value(said: str) -> int | None:
    digits = said.replace(",", "")
    if digits.isdigit():
        return int(digits)
    return spelled_number(said) if re.search(r"[a-z]", said, re.I) and not said.lower().strip() in ("a", "and") \
        else None
