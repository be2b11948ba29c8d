"""A message read as its parts: sentences (and the clauses of run-on speech), each with its role.

Customers do not send one-line queries. An email has a subject, a greeting, background, the request,
details, thanks, a sign-off, a signature and quoted history; a call transcript has the agent's lines
and the caller's run-on speech; a chat has several short lines. ``split`` finds the sentences and
says what each is, so the agent can decide from the customer's own words (``CONTENT_ROLES``) and
point at the sentence behind a decision.

Sentences come from pySBD (Sadvilkar & Neumann, 2020: the rule-based segmenter built for the golden
rules of English sentence boundaries, abbreviations, decimals and ellipses included; pure Python, MIT,
about 1 ms for a 60-word email). It was chosen over spaCy's sentencizer, which splits on punctuation
tokens only and keeps "Subject: ...\\n\\nHello,\\n\\nOn 14 August I ..." as one sentence, and over
NLTK's Punkt, whose model is a download. Lines are read first, because line breaks carry structure in
email and transcripts (speaker labels, quotes, signatures), and hard-wrapped lines are joined again.
Speech written by a recogniser often has no punctuation at all, so a long unpunctuated sentence is
also cut where a new question or request starts after a conjunction ("... and um also can I change
the pin").
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# Roles. The customer's words: what they want (or the background to it), the email's subject line, and
# details given as fields ("Beneficiary name: Anil Iyer", "Amount: £250").
CONTENT, SUBJECT, DETAIL = "content", "subject", "detail"
# Courtesies and structure: read, but never what a message is about.
GREETING, THANKS, SIGN_OFF, SIGNATURE = "greeting", "thanks", "sign_off", "signature"
# Not the customer's words this time.
AGENT, QUOTED = "agent", "quoted"
CONTENT_ROLES = (CONTENT, SUBJECT, DETAIL)
MAX_CHARS = 20_000  # what is split of one message (the encoder reads 256 tokens of it anyway)


@dataclass(frozen=True)
class Sentence:
    text: str
    start: int  # character offsets in the message
    end: int
    role: str
    speaker: str | None = None  # "customer" or "agent" where the transcript labels its turns


# Speaker labels of a transcript: "Agent:", "Customer:", "Caller:", "Speaker 1:", "Priya (agent):".
_SPEAKER = re.compile(
    r"^[ \t]*(?:(?P<agent>agent|advis[eo]r|rep(?:resentative)?|operator|staff|bank|support|kestrel(?:\s+bank)?|"
    r"[A-Z][a-z]{1,20}\s*\((?:agent|bank|advis[eo]r)\))|"
    r"(?P<customer>customer|caller|client|cust|member|user|me|[A-Z][a-z]{1,20}\s*\((?:customer|caller)\)))"
    r"[ \t]*:[ \t]*", re.I)
_QUOTE_HEADER = re.compile(
    r"^[ \t]*(?:On\s[^\n]{0,200}(?:\n[^\n]{0,200})?\swrote:|-{2,}[ \t]*(?:Original Message|Forwarded message)"
    r"[ \t]*-{2,}|Begin forwarded message:|From:[ \t][^\n]{1,200}\n[ \t]*(?:Sent|Date):[^\n]*|_{10,})[ \t]*$",
    re.I | re.M)
_SIGNATURE_START = re.compile(r"^[ \t]*(?:--[ \t]*|Sent from my [^\n]{1,60}|Sent from (?:Outlook|Mail)[^\n]{0,40}|"
                              r"Get Outlook for [^\n]{1,40})$", re.I)
_SUBJECT = re.compile(r"^[ \t]*Subject:[ \t]*", re.I)

_WORDS = r"(?:[\s,!.\-–—:;]|\bthe\b|\bteam\b|\bthere\b|\ball\b|\bfolks\b|\bguys\b|\bagain\b|\beveryone\b)*"
GREETING_PATTERN = re.compile(
    rf"^(?:hi+|hey+|hiya|hello+|helo|howdy|yo|greetings|good\s+(?:morning|afternoon|evening|day)|morning|evening|"
    rf"dear(?:\s+(?:sir|madam|sir\s+or\s+madam|sir/madam|all|team|customer\s+(?:services?|support)|support|"
    rf"kestrel(?:\s+bank)?(?:\s+team)?|bank|[A-Z][a-z]+)){{0,3}}|to\s+whom\s+it\s+may\s+concern)"
    rf"(?:\s+(?:kestrel(?:\s+bank)?|support|customer\s+(?:services?|support)|there|team|all|folks|guys|"
    rf"[A-Z][a-z]+)){{0,3}}{_WORDS}$", re.I)
PLEASANTRY = re.compile(
    r"^(?:i\s+)?hope\s+(?:you(?:'re|\s+are)|this\s+(?:email|message)\s+finds\s+you|all\s+is)\s+(?:well|ok|okay|good)"
    r"[^.?!]{0,30}[.!]*$|^(?:how\s+are\s+you(?:\s+doing)?(?:\s+today)?\??)$", re.I)
THANKS_PATTERN = re.compile(
    # not sarcasm: "thanks for nothing" is the customer's temper, read with the content
    r"^(?:(?:many|big|huge)\s+)?(?:thanks|thank\s+you|thank\s+u|thanx|thx|ty|cheers|ta)(?!\s+for\s+(?:absolutely\s+)?nothing)"
    r"(?:\s+(?:so|very)\s+much)?"
    r"(?:\s+(?:a\s+lot|in\s+advance|for\s+(?:your|any|all\s+your)\s+(?:help|time|assistance|support|patience)"
    r"(?:\s+(?:with\s+this|in\s+advance))?|again|very\s+much|kindly))*[\s,!.]*"
    r"|^(?:any|your)\s+help\s+(?:would\s+be|is)\s+(?:much\s+|greatly\s+|really\s+|very\s+much\s+)?appreciated[\s.!]*"
    r"|^(?:i\s+)?(?:look(?:ing)?\s+forward\s+to\s+(?:hearing\s+from\s+you|your\s+(?:reply|response))"
    r"(?:\s+soon)?|appreciate\s+(?:it|your\s+help))[\s.!]*$", re.I)
SIGN_OFF_PATTERN = re.compile(
    r"^(?:(?:thanks|thank\s+you|many\s+thanks)\s+(?:and|&)\s+(?:kind\s+|best\s+)?regards|kind(?:est)?\s+regards|best\s+regards|warm(?:est)?\s+regards|regards|best(?:\s+wishes)?|all\s+the\s+best|"
    r"yours\s+(?:sincerely|faithfully|truly)|sincerely|cheers|thanks|many\s+thanks|thank\s+you|take\s+care|"
    r"speak\s+soon|with\s+thanks|respectfully|br|rgds)[\s,.!]*$", re.I)

# A field of details: a short label, a colon, a short value, no question ("Reference: TRX-4471"). Labels
# that introduce what the customer asks ("PS:", "Question:") or say something ("The problem is:") are not
# fields.
_FIELD = re.compile(
    r"^(?!(?:p\.?\s?s|question|request|query|issue|problem|note|update|edit|also|re|fwd?)\s*:)"
    r"(?![^:]*\b(?:is|are|was|were|am|be|have|has|had|do|does|did|i|we|this|that|it)\b[^:]*:)"
    r"[A-Za-z][A-Za-z'()/&-]*(?:\s+[A-Za-z'()/&-]+){0,3}\s*:\s+[^?\s][^?]*$", re.I)
FIELD_VALUE_WORDS = 8

# Where run-on speech starts a new question or request: after a conjunction or filler, a question
# word with its subject ("and um also can i change the pin", "so how do i activate it").
_CLAUSE_START = re.compile(
    r"\b(?:and|so|but|also|then|plus|oh|okay|ok|right|well)\s+(?:(?:um+|uh+|erm?|like|also)\s+)*"
    r"(?=(?:how|what|why|when|where|which|whether|if|can|could|would|will|is|are|do|does|did|should|may|"
    r"i\s+(?:need|want|would\s+like|also\s+want|also\s+need)|please)\b\s+(?:\w+\s+)?"
    r"(?:i|you|it|we|my|there|the|that|this|they|he|she|u|me|to|a|get|find|tell|check|let)\b)", re.I)
# Where a new request is announced: "and the other thing is", "also", "one more thing", "while I have you".
_ANNOUNCED = re.compile(
    r"(?:\b(?:and\s+)?(?:um+\s+|uh+\s+)*(?:the\s+other\s+(?:thing|question)(?:\s+is)?|another\s+(?:thing|question)"
    r"(?:\s+is)?|one\s+more\s+(?:thing|question)|(?:and\s+)?while\s+i\s+have\s+you|while\s+i'?m\s+(?:on|at\s+it)|"
    r"(?:and\s+)?second(?:ly|\s+(?:thing|question))|and\s+(?:(?:um+|uh+|erm?)\s+)*second|"
    r"the\s+(?:main\s+|real\s+|other\s+)?reason\s+i'?m\s+(?:calling|phoning|ringing|writing)|separately|on\s+top\s+of\s+that|as\s+well\s+as\s+that|oh\s+and|and\s+also|also)\b)", re.I)
# Thanks that go on to ask something ("thanks and also there's a transfer still pending") are content.
_GOES_ON = re.compile(r"(?:and|but|also|so|plus|oh|though)\b(?!\s+(?:have\s+a|take\s+care|bye|regards|best))"
                      r"(?:\W+\w+){3}", re.I)
MIN_CLAUSE_WORDS = 4
# A sentence this long with no punctuation inside may hold several requests: run-on speech, or written
# questions joined by a conjunction ("How do I get one, and is there a limit on it?").
RUN_ON_WORDS = 18


@lru_cache(maxsize=1)
def _segmenter():
    import pysbd

    return pysbd.Segmenter(language="en", clean=False, char_span=True)


def split(text: str) -> list[Sentence]:
    """The message's sentences in order, each with its role; quoted history, signatures and the agent's
    turns are kept (with their roles) so offsets and evidence always point into ``text``."""
    text = text[:MAX_CHARS].replace("\r", " ")
    out: list[Sentence] = []
    for start, end, role, speaker in _blocks(text):
        if role in (QUOTED, SIGNATURE, SUBJECT):
            out.append(Sentence(text[start:end].strip(), start, end, role, speaker))
            continue
        for s, e in _sentences(text, start, end):
            for cs, ce in _clauses(text, s, e):
                out.append(Sentence(text[cs:ce], cs, ce, _role(text[cs:ce]) if role == CONTENT else role, speaker))
    return _signature_after_sign_off(out)


@dataclass(frozen=True)
class Reading:
    """What the models read of a message: the customer's own sentences joined (``text``), and where
    each of them (``parts``) lies in that text."""

    text: str
    sentences: list[Sentence]  # every sentence of the message, with its role
    parts: list[Sentence]  # the sentences ``text`` is made of, in order
    spans: list[tuple[int, int]]  # each part's characters in ``text``


def read(message: str) -> Reading:
    """The message split, and the text the models read: its content sentences (the subject line,
    background and requests), or, where it has none (a bare "Thanks!"), everything the customer wrote
    this time; the quoted history and the agent's turns are never read."""
    sentences = split(message)
    parts = ([s for s in sentences if s.role in CONTENT_ROLES]
             or [s for s in sentences if s.role not in (QUOTED, AGENT)])
    spans, pos = [], 0
    for s in parts:
        spans.append((pos, pos + len(s.text)))
        pos += len(s.text) + 1
    return Reading(" ".join(s.text for s in parts), sentences, parts, spans)


def _hard_wrapped(lines: list[str]) -> bool:
    """Whether the text was wrapped at a fixed width (as many mail clients send plain text): two or more
    lines run to 60-80 characters without ending a sentence, and none is longer. A chat's lines or an
    unwrapped email's paragraphs are left as they are."""
    prose = [line.rstrip() for line in lines if line.strip() and not line.lstrip().startswith(">")]
    if any(len(line) > 80 for line in prose):
        return False
    return sum(60 <= len(line) and not re.search(r"[.?!:;]$", line) for line in prose) >= 2


def _blocks(text: str):
    """(start, end, role, speaker) for each line or run of wrapped lines, in order."""
    quote = _QUOTE_HEADER.search(text)
    limit = quote.start() if quote else len(text)
    pos, speaker, in_signature = 0, None, False
    lines = text[:limit].split("\n")
    wrapped = _hard_wrapped(lines)
    i = 0
    while i < len(lines):
        start = pos
        # Hard-wrapped prose: a long line without an end of sentence continues on the next line.
        while (wrapped and i + 1 < len(lines) and len(lines[i]) >= 60 and not re.search(r"[.?!:;]\s*$", lines[i])
               and lines[i + 1].strip() and not _SPEAKER.match(lines[i + 1]) and not lines[i + 1].lstrip().startswith(">")):
            pos += len(lines[i]) + 1
            i += 1
        end = pos + len(lines[i])
        pos, i = end + 1, i + 1
        if not text[start:end].strip():
            continue
        block = text[start:end]
        if block.lstrip().startswith(">"):
            yield start, end, QUOTED, None
            continue
        if in_signature or _SIGNATURE_START.match(block):
            in_signature = True
            yield start, end, SIGNATURE, speaker
            continue
        subject = _SUBJECT.match(block)
        if subject and not out_of_first_line(text, start):
            yield start + subject.end(), end, SUBJECT, None
            continue
        label = _SPEAKER.match(block)
        if label:
            speaker = "agent" if label.group("agent") else "customer"
            start += label.end()
        yield start, end, AGENT if speaker == "agent" else CONTENT, speaker
    if quote:
        yield quote.start(), len(text), QUOTED, None


def out_of_first_line(text: str, start: int) -> bool:
    """Whether ``start`` lies after the message's first non-blank line (a subject comes first)."""
    return bool(text[:start].strip())


_INNER_END = re.compile(r"[.?!;…]\W*\s+\S")  # punctuation that may end a sentence, with text after it


def _sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    block = text[start:end]
    if not _INNER_END.search(block):  # one sentence (most one-line queries): no need for the segmenter
        s, e = start + len(block) - len(block.lstrip()), start + len(block.rstrip())
        return [(s, e)] if s < e else []
    spans = []
    # A block's line breaks are hard wraps (see _blocks): one sentence may run across them.
    for span in _segmenter().segment(text[start:end].replace("\n", " ")):
        s, e = start + span.start, start + span.end
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if s < e:
            spans.append((s, e))
    return spans


def _clauses(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """A long sentence without punctuation inside (its final mark aside) cut before each new question or
    announced request; others whole."""
    sentence = text[start:end]
    if len(sentence.split()) < RUN_ON_WORDS or re.search(r"[.?!;]", sentence.rstrip(" .?!")):
        return [(start, end)]
    cuts = sorted({m.start() for m in _CLAUSE_START.finditer(sentence)} | {m.start() for m in _ANNOUNCED.finditer(sentence)})
    bounds, last = [], 0
    for cut in cuts:
        if len(sentence[last:cut].split()) >= MIN_CLAUSE_WORDS and len(sentence[cut:].split()) >= MIN_CLAUSE_WORDS:
            bounds.append(cut)
            last = cut
    edges = [0, *bounds, len(sentence)]
    return [(start + a + (len(sentence[a:b]) - len(sentence[a:b].lstrip())), start + len(sentence[:b].rstrip()))
            for a, b in zip(edges, edges[1:])]


def _role(sentence: str) -> str:
    s = sentence.strip()
    if GREETING_PATTERN.match(s) or PLEASANTRY.match(s):
        return GREETING
    if SIGN_OFF_PATTERN.match(s):
        return SIGN_OFF
    thanks = THANKS_PATTERN.match(s)
    if thanks and not _GOES_ON.match(s[thanks.end():]):
        return THANKS
    if _FIELD.match(s) and len(s.split(":", 1)[1].split()) <= FIELD_VALUE_WORDS:
        return DETAIL
    return CONTENT


def _signature_after_sign_off(sentences: list[Sentence]) -> list[Sentence]:
    """After a sign-off ("Kind regards,"), short lines are the signature: a name, a title, a number."""
    out, signed = [], False
    for s in sentences:
        if signed and s.role in (CONTENT, DETAIL) and len(s.text.split()) <= 8 and not s.text.rstrip().endswith("?"):
            s = Sentence(s.text, s.start, s.end, SIGNATURE, s.speaker)
        signed = signed or s.role == SIGN_OFF or (s.role == THANKS and s.text.rstrip().endswith(","))
        out.append(s)
    return out
