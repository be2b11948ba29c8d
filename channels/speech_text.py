"""Text made ready for a voice: what a person would say, in sentences of bounded length.

A voice reads digits, symbols and markup literally or not at all, and a listener (or Whisper, hearing
it back) cannot tell a reference read as a number from an amount: "48213" read as a cardinal comes
back as "48,230". So before synthesis, markup is stripped, and amounts, dates, references, card
digits, phone numbers, emails, URLs, times, percentages, ordinals, numbers and abbreviations are
written out in words. Entities are found by the same detectors that read customer messages
(``agent.entities``), so the reply says back exactly what the agent understood.
"""
from __future__ import annotations

import dataclasses
import html
import re
import unicodedata
from dataclasses import dataclass

from num2words import num2words

from agent import logs
from agent.entities import CURRENCY_SYMBOLS, extract
from agent.types import AgentError

log = logs.get("speech_text")


@dataclass(frozen=True)
class SpeechTextOptions:
    # English is put in words here. A voice speaking another language (Coqui's XTTS v2) gets the text with
    # markup and symbols removed, and reads numbers with its own rules for that language.
    language: str = "en"
    # en_GB reads "12/03/2026" day first (the twelfth of March); en_US month first (December the third).
    locale: str = "en_GB"
    # A sentence longer than this is cut at commas, then between words, so each synthesised chunk stays
    # small (time to first audio, memory) whatever the input.
    max_sentence_chars: int = 250
    # A longer first sentence is cut at a comma within this length: speech runs at about 17 characters a
    # second, and Piper synthesises at about 0.064 of real time, so 80 characters take about 0.3 s.
    first_chunk_chars: int = 80
    # About 50 minutes of speech: more is surely not a reply to speak, and is refused rather than queued.
    max_chars: int = 50_000


DIGITS = "zero one two three four five six seven eight nine".split()
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
# Currency code -> (one, many, one minor, many minor).
MONEY = {"GBP": ("pound", "pounds", "penny", "pence"), "EUR": ("euro", "euros", "cent", "cents"),
         "USD": ("dollar", "dollars", "cent", "cents"), "CHF": ("Swiss franc", "Swiss francs", "centime", "centimes"),
         "PLN": ("zloty", "zloty", "grosz", "groszy"),
         "AUD": ("Australian dollar", "Australian dollars", "cent", "cents"),
         "CAD": ("Canadian dollar", "Canadian dollars", "cent", "cents"),
         "NZD": ("New Zealand dollar", "New Zealand dollars", "cent", "cents"),
         "HKD": ("Hong Kong dollar", "Hong Kong dollars", "cent", "cents"),
         "SGD": ("Singapore dollar", "Singapore dollars", "cent", "cents"),
         "JPY": ("yen", "yen", "sen", "sen"), "CNY": ("yuan", "yuan", "fen", "fen"),
         "INR": ("rupee", "rupees", "paisa", "paise"), "SEK": ("Swedish krona", "Swedish kronor", "öre", "öre"),
         "NOK": ("Norwegian krone", "Norwegian kroner", "øre", "øre"),
         "DKK": ("Danish krone", "Danish kroner", "øre", "øre"), "ZAR": ("rand", "rand", "cent", "cents"),
         "MXN": ("Mexican peso", "Mexican pesos", "centavo", "centavos"), "AED": ("dirham", "dirhams", "fils", "fils"),
         "TRY": ("Turkish lira", "Turkish lira", "kuruş", "kuruş")}
# Written forms a voice would spell or mispronounce; keys are matched whole and case-sensitively
# ("No." only before a number, see _ABBREVIATIONS).
ABBREVIATIONS = {
    "e.g.": "for example", "i.e.": "that is", "etc.": "et cetera", "approx.": "approximately",
    "approx": "approximately", "incl.": "including", "excl.": "excluding", "vs.": "versus", "vs": "versus",
    "Mr.": "Mister", "Mrs.": "Missus", "Ms.": "Miz", "Dr.": "Doctor", "Mr": "Mister", "Mrs": "Missus",
    "Ltd": "Limited", "Ltd.": "Limited", "Co.": "Company", "dept.": "department", "min.": "minutes",
    "mins": "minutes", "hrs": "hours", "T&Cs": "terms and conditions", "T&C": "terms and conditions",
    "a/c": "account", "24/7": "twenty-four seven", "FAQ": "F A Q", "FAQs": "F A Qs", "ASAP": "as soon as possible",
    "PIN": "pin", "N/A": "not applicable", "w/c": "week commencing", "Q&A": "Q and A",
}
TITLES = {"Mr.", "Mrs.", "Ms.", "Dr."}
# Symbols left once entities, URLs and abbreviations are read out.
SYMBOLS = {"&": " and ", "+": " plus ", "=": " equals ", "@": " at ", "~": " about ", "%": " percent ",
           "#": " number ", "°": " degrees ", "×": " times ", "£": " pounds ", "€": " euros ", "¥": " yen ",
           "₹": " rupees "}

# Currency names, for an amount followed by the name of its currency.
_CURRENCY_NAMES = {name.lower(): code for code, names in MONEY.items() for name in names[:2]}
_CURRENCY_NAME = re.compile(r"\s+(" + "|".join(re.escape(n) for n in sorted(_CURRENCY_NAMES, key=len, reverse=True))
                            + r")\b", re.I)
_ABBREVIATIONS = re.compile(
    r"(?<![\w.])(?:" + "|".join(re.escape(k) for k in sorted(ABBREVIATIONS, key=len, reverse=True)) + r")(?![\w&/])"
    r"|\b[Nn]o\.(?=\s?\d)")
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"')\]]+", re.I)
# A bare domain ("kestrel.example/help"); looked for after emails, whose domains are read with them.
_DOMAIN = re.compile(r"\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b(?:/[^\s<>\"')\]]*)?")
# A word mixing letters and digits ("KB48213", "MP3") is a code: said character by character.
_CODE = re.compile(r"\b(?=[A-Za-z]*\d)(?=\d*[A-Za-z])[A-Za-z0-9]{3,}\b")
_TIME = re.compile(r"\b(\d{1,2})(?:[:.](\d{2}))?\s?(am|pm|a\.m\.|p\.m\.)(?!\w)|\b(\d{1,2}):(\d{2})\b", re.I)
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s?%")
_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.I)
_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?![\w])")
_SPOKEN_DATE = re.compile(
    r"(?:(?P<weekday>[a-z]+day),?\s+(?:the\s+)?)?(?:(?P<d1>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<m1>[a-z]+)\.?|(?P<m2>[a-z]+)\.?\s+(?P<d2>\d{1,2})"
    r"(?:st|nd|rd|th)?)(?:,?\s+(?P<y>\d{4}))?$", re.I)
# Markup: HTML elements whose text is not for reading, HTML tags, and Markdown syntax.
_HTML_HIDDEN = re.compile(r"<(script|style|head)\b.*?</\1\s*>", re.I | re.S)
_HTML_BREAK = re.compile(r"<\s*(?:br|/p|/div|/li|/h\d|/tr|/title|p|li|h\d)\b[^>]*>", re.I)
_HTML_TAG = re.compile(r"</?[a-z][^>]*>|<!--.*?-->", re.I | re.S)
_MD_IMAGE_OR_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_BLOCK = re.compile(r"^\s{0,3}(?:#{1,6}\s+|>\s?|[-*+]\s+|\d{1,3}[.)]\s+)", re.M)
_MD_RULE = re.compile(r"^\s*(?:[-*_=]\s*){3,}$", re.M)
_MD_EMPHASIS = re.compile(r"(?<![\w*_~`])(\*\*|__|\*|_|~~|`+)(?=\S)(.+?)(?<=\S)\1(?![\w*_~`])")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|(?<=[。！？])\s*")  # and the full stops of CJK scripts


def say_digits(text: str) -> str:
    """Each digit and letter on its own, in order; other characters are pauses between groups."""
    groups = re.findall(r"[A-Za-z0-9]+", text)
    return ", ".join(" ".join(DIGITS[int(c)] if c.isdigit() else c.upper() for c in g) for g in groups)


def say_number(number: int | float, to: str = "cardinal") -> str:
    # num2words writes "one thousand, two hundred"; the commas would become pauses mid-number.
    return num2words(number, lang="en", to=to).replace(",", "")


def say_amount(value: str, currency: str | None = None) -> str:
    """``value`` as ``agent.entities`` normalises amounts ("£1,234.50", "12 CHF") in words, in ``currency``
    (a code) where the text names another currency after it ("$15 Canadian dollars")."""
    code = CURRENCY_SYMBOLS.get(value[:1])
    number = value[1:] if code else value.split()[0]
    code = currency or code or value.split()[-1]
    one, many, minor_one, minor_many = MONEY[code]
    pounds, pence = divmod(round(float(number.replace(",", "")) * 100), 100)
    if not pounds:
        return f"{say_number(pence)} {minor_one if pence == 1 else minor_many}"
    if not pence:
        return f"{say_number(pounds)} {one if pounds == 1 else many}"
    # "forty-two point nine zero euros": of four forms said by the packaged voice in every currency and heard
    # back by Whisper base (bench/amount_forms.py), this one came back right most often, clean and over a
    # phone line; "forty-two euros ninety" came back as "42 years 90", "three pounds five" as "£3.50".
    return f"{say_number(pounds)} point {DIGITS[pence // 10]} {DIGITS[pence % 10]} {many}"


def say_date(text: str, options: SpeechTextOptions, after_the: bool = False) -> str | None:
    """A written date in words, or None when ``text`` is not a calendar date (e.g. "next week")."""
    numeric = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})|(\d{1,2})[/.](\d{1,2})[/.](\d{2,4})", text)
    written = None
    if numeric and numeric.group(1):
        year, month, day = (int(g) for g in numeric.group(1, 2, 3))
    elif numeric:
        first, second, year = (int(g) for g in numeric.group(4, 5, 6))
        day, month = (second, first) if options.locale == "en_US" else (first, second)
        year += 2000 if year < 100 else 0
    elif written := _SPOKEN_DATE.fullmatch(text):
        name = (written.group("m1") or written.group("m2")).lower()
        month = next((i for i, m in enumerate(MONTHS, 1) if m.lower().startswith(name[:3])), 0)
        day, year = int(written.group("d1") or written.group("d2")), int(written.group("y") or 0) or None
    else:
        return None
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    ordinal = say_number(day, "ordinal")
    weekday = written.group("weekday").capitalize() + " " if written and written.group("weekday") else ""
    spoken = f"{weekday}{MONTHS[month - 1]} {ordinal}" if options.locale == "en_US" else \
        f"{weekday}{'' if after_the and not weekday else 'the '}{ordinal} of {MONTHS[month - 1]}"
    return f"{spoken} {say_number(year, 'year')}" if year else spoken


def say_email(address: str) -> str:
    local, _, domain = address.partition("@")
    spell = {".": " dot ", "-": " dash ", "_": " underscore ", "+": " plus "}
    return " at ".join("".join(spell.get(c, c) for c in part) for part in (local, domain))


def say_url(url: str) -> str:
    """A web address in words; punctuation after it ends the sentence rather than being read."""
    bare = url.rstrip(".,;:!?")
    address = re.sub(r"^www\.", "w w w.", re.sub(r"^https?://", "", bare, flags=re.I).rstrip("/"), flags=re.I)
    spell = {".": " dot ", "/": " slash ", "-": " dash ", "_": " underscore ", "?": " question mark ",
             "=": " equals ", "&": " and ", ":": " colon "}
    return "".join(spell.get(c, c) for c in address) + url[len(bare):]


def _say_time(m: re.Match) -> str:
    hour, minute = int(m.group(1) or m.group(4)), int(m.group(2) or m.group(5) or 0)
    suffix = (m.group(3) or "").lower().replace(".", "")
    if hour > 24 or minute > 59:
        return m.group(0)
    clock = say_number(hour) + (f" oh {say_number(minute)}" if 0 < minute < 10 else
                                f" {say_number(minute)}" if minute else "" if suffix else " o'clock")
    return f"{clock} {' '.join(suffix.upper())}" if suffix else clock  # "nine thirty P M": letter names


def _say_plain_number(m: re.Match) -> str:
    whole, fraction = m.group(1), m.group(2)
    if fraction is not None:  # "2.5" -> "two point five"; the decimals are always read digit by digit
        return f"{say_number(int(whole.replace(',', '')))} point {' '.join(DIGITS[int(d)] for d in fraction)}"
    if "," in whole:
        return say_number(int(whole.replace(",", "")))
    if len(whole) >= 5 or (len(whole) > 1 and whole[0] == "0"):
        return say_digits(whole)  # long unseparated numbers are identifiers, said digit by digit
    if len(whole) == 4 and 1100 <= int(whole) <= 2099 and not whole.endswith("00"):
        return say_number(int(whole), "year")  # "2026" -> "twenty twenty-six"
    return say_number(int(whole))


def strip_markup(text: str) -> str:
    """Plain text from HTML or Markdown: tags, link targets and emphasis marks go; list items and
    headings become sentences of their own."""
    if re.search(r"</?[a-z][^>]*>", text, re.I):
        text = _HTML_TAG.sub(" ", _HTML_BREAK.sub("\n\n", _HTML_HIDDEN.sub(" ", text)))
        text = html.unescape(text)
    text = _MD_RULE.sub("", text)
    text = _MD_IMAGE_OR_LINK.sub(r"\1", text)
    for _ in range(2):  # nested emphasis (**_x_**)
        text = _MD_EMPHASIS.sub(r"\2", text)
    block_starts = _MD_BLOCK.findall(text)
    text = _MD_BLOCK.sub("\n\n", text)
    text = text.replace("[[", "(").replace("]]", ")")  # Piper reads [[ ... ]] as raw phonemes
    text = re.sub(r"\s*\|\s*", ", ", text.strip().strip("|"))  # table cells
    # A blank line (or a list item, heading or HTML block) ends a sentence, so "Hello," on its own line is
    # spoken (and streamed) on its own; a single newline is only a wrap.
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    if block_starts or len(paragraphs) > 1:
        paragraphs = [p if p[-1:] in ".!?" else p.rstrip(",;:") + "." for p in paragraphs if p]
    return " ".join(p for p in paragraphs if p)


def _say_entities(text: str, options: SpeechTextOptions) -> str:
    out, last = [], 0
    for e in extract(text):
        if e.kind == "amount":
            named = _CURRENCY_NAME.match(text, e.end)  # "$15.25 Canadian dollars", as Whisper writes some
            spoken = say_amount(e.value, _CURRENCY_NAMES[named.group(1).lower()] if named else None)
            e = dataclasses.replace(e, end=named.end()) if named else e
        elif e.kind in ("reference", "card_last4", "phone", "iban", "account_number", "sort_code"):
            # digits said one by one are found as such (agent.entities); written as words, they are said as written
            spoken = say_digits(e.text) if any(c.isdigit() for c in e.text) else e.text
        elif e.kind == "card_number":
            spoken = f"a card number ending in {say_digits(e.value[-4:])}"  # never a full card number
        elif e.kind == "email":
            spoken = say_email(e.text)
        else:
            spoken = say_date(e.text, options, after_the=text[:e.start].lower().endswith("the ")) or e.text
        out += [text[last:e.start], spoken]
        last = e.end
    return "".join(out + [text[last:]])


def _speakable(text: str, english: bool = True) -> str:
    """Only what an English voice can say: Latin letters, digits, punctuation and the symbols read out
    later; emoji, other scripts and control characters would be skipped or spelled out by name. For
    another language, letters of any script, digits, punctuation and currency signs."""
    text = unicodedata.normalize("NFKC", text)
    text = text.translate(str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": ", ",
                                         "—": ", ", "…": "."}))
    if english:
        kept = [ch if ch.isascii() and ch.isprintable() or ch in SYMBOLS
                or ch.isalpha() and "LATIN" in unicodedata.name(ch, "") else " " for ch in text]
    else:
        kept = [ch if unicodedata.category(ch)[0] in "LMNP" or unicodedata.category(ch) == "Sc" or ch == " "
                else " " for ch in text]
    dropped = sum(a != b and not b.isspace() for a, b in zip(kept, text))
    if dropped:
        logs.event(log, "unspeakable_characters_dropped", count=dropped)  # the count only: never the text
    return "".join(kept)


def _say_abbreviation(m: re.Match) -> str:
    spoken = ABBREVIATIONS.get(m.group(0), "number")
    # "etc." can end a sentence: keep the full stop the splitter needs (a title never ends one).
    rest = m.string[m.end():].lstrip()
    ends = m.group(0).endswith(".") and m.group(0) not in TITLES and (not rest or rest[0].isupper())
    return spoken + "." if ends else spoken


def prepare(text: str, options: SpeechTextOptions = SpeechTextOptions()) -> str:
    """``text`` as a person would say it (one string); a one-line AgentError when nothing is left to say."""
    if len(text) > options.max_chars:
        raise AgentError(f"text too long to speak: {len(text):,} characters (at most {options.max_chars:,})")
    english = options.language.split("-")[0] == "en"
    text = _speakable(strip_markup(text), english)
    if not english:
        text = " ".join(text.split())
        if not any(ch.isalpha() for ch in text):
            raise AgentError("nothing to say: the text has no words to speak")
        return text
    text = _URL.sub(lambda m: say_url(m.group(0)), text)
    text = _say_entities(text, options)
    text = _DOMAIN.sub(lambda m: say_url(m.group(0)), text)
    text = _ABBREVIATIONS.sub(_say_abbreviation, text)
    text = _TIME.sub(_say_time, text)
    text = _PERCENT.sub(lambda m: f"{_say_plain_number(_NUMBER.match(m.group(1)))} percent", text)
    text = _ORDINAL.sub(lambda m: say_number(int(m.group(1)), "ordinal"), text)
    text = _CODE.sub(lambda m: say_digits(m.group(0)), text)
    text = _NUMBER.sub(_say_plain_number, text)
    for symbol, word in SYMBOLS.items():
        text = text.replace(symbol, word)
    text = re.sub(r"\(\s+", "(", re.sub(r"\s+([,.;:!?)])", r"\1", " ".join(text.split())))
    text = re.sub(r"([,;:])[,;:]+", r"\1", text)
    if not re.search(r"[A-Za-z]", text):
        raise AgentError("nothing to say: the text has no words an English voice can speak")
    return text


def sentences(text: str, options: SpeechTextOptions = SpeechTextOptions()) -> list[str]:
    """``prepare(text)`` split into sentences of at most ``max_sentence_chars`` characters; a long first
    sentence is also cut at its first clause break, so that the first audio comes sooner."""
    out = []
    for sentence in _SENTENCE_END.split(prepare(text, options)):
        out += _bounded(sentence.strip(), options.max_sentence_chars)
    out = [s for s in out if any(ch.isalpha() for ch in s)]
    if out and len(out[0]) > options.first_chunk_chars:
        out[:1] = _first_chunk(out[0], options.first_chunk_chars)
    return out


def _first_chunk(sentence: str, limit: int) -> list[str]:
    """The sentence cut at its last comma within ``limit`` (kept whole without one: a cut between words
    gives the first part a sentence-final fall, and Whisper then hears amounts and digits less well)."""
    # Not the commas between the digit groups of a spoken phone number or reference ("K B, four eight...").
    commas = [m.start() for m in re.finditer(r", (?!(?:[A-Z]|zero|one|two|three|four|five|six|seven|eight|nine)\b)",
                                             sentence[:limit])]
    return [sentence[:commas[-1] + 1], sentence[commas[-1] + 2:]] if commas else [sentence]


def _bounded(sentence: str, limit: int) -> list[str]:
    """Cut a long sentence at clause breaks (commas, semicolons), else between words, into parts <= limit."""
    if len(sentence) <= limit:
        return [sentence]
    for breaks in (r"(?<=[,;:])\s+", r"\s+"):
        parts, current = [], ""
        for piece in re.split(breaks, sentence):
            if current and len(current) + 1 + len(piece) > limit:
                parts.append(current)
                current = piece
            else:
                current = f"{current} {piece}".strip()
        parts.append(current)
        if all(len(p) <= limit for p in parts):
            return parts
    return [sentence[i:i + limit] for i in range(0, len(sentence), limit)]  # one "word" longer than limit
