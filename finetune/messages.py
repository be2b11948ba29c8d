"""Whole customer messages built from one-line queries: emails, chats and calls, for training and calibration.

Banking77's queries are one line each; customers send whole messages. A model trained on the lines
alone reads a long email as unlike anything it knows (out of scope), reads its length as temper, and
lets background ("my old card expired") outvote the request ("where is the new one?"). So each
query is also used inside a message built around it from hand-written parts
(``data/messages/frames.yaml``: greetings, openers, background, mild annoyance, urgency, thanks,
sign-offs, signatures, agent turns, linkers; ``data/messages/contexts.yaml``: for each intent, the
situation a customer describes before asking, short requests that only make sense after it, and
requests written as the later question of a message, which name their topic because the message was
about something else), in the forms the channels deliver:

- email: a subject line, greeting, background, the request, details, thanks, sign-off, signature,
  sometimes the bank's earlier reply quoted below;
- chat: short lines, often lower case, chat spelling;
- call: one customer's speech as a recogniser writes it (lower case, no punctuation, numbers in
  words, fillers);
- dialogue: both sides of a call, one labelled turn a line.

A message may carry two requests of different intents, joined by a linker ("And while I have you,
...") or in separate turns. Each request knows its span in the text, and so does the context written
for it, so training can teach the model both the message and its parts (``Built.labelled``). A later
request is often one a writer wrote as such rather than a Banking77 query: Banking77's lines were
written alone, and a customer who changes topic words it differently ("the transfer to my sister I
made on Monday, how long do they usually take?"). Every fourth of them is kept for validation
(``held_out``), so the second-request scorer is fitted on ones the model never trained on.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from agent.types import AgentError, first_line
from finetune.augment import DETAILS, FIRST, LAST, _amount, _date, _digits, _email, _phone, _reference

REPO = Path(__file__).resolve().parent.parent
FRAMES = REPO / "data" / "messages" / "frames.yaml"
CONTEXTS = REPO / "data" / "messages" / "contexts.yaml"
CHANNELS = {"email": 0.35, "chat": 0.25, "call": 0.2, "dialogue": 0.2}
MERCHANTS = ["Tesco", "Amazon", "Zara", "Uber", "Ryanair", "Starbucks", "IKEA", "Boots", "Deliveroo", "Airbnb",
             "Apple", "Shell", "Lidl", "Primark", "eBay", "Booking.com", "Pret", "Argos", "Currys", "Netflix"]
COUNTRIES = ["Spain", "France", "Portugal", "Italy", "Germany", "Poland", "the US", "Canada", "Thailand", "Greece",
             "Ireland", "the Netherlands", "Switzerland", "Japan", "Mexico", "Turkey", "Croatia", "India"]
CITIES = ["Lisbon", "Madrid", "Paris", "Berlin", "Rome", "Kraków", "Dublin", "Amsterdam", "Manchester", "Leeds",
          "Glasgow", "Cardiff", "New York", "Toronto", "Bangkok", "Athens", "Barcelona", "Edinburgh"]
FILLERS = ["um", "uh", "like", "you know", "so", "yeah", "i mean", "er", "erm"]
LATER_REQUEST_SHARE = 0.5  # of later requests, the share asked in a writer's later-request sentence
HELD_OUT_EVERY = 4  # every fourth later-request sentence of an intent is for validation only


@dataclass
class Built:
    """A built message: its text, channel, and the intent of each labelled character span (each
    request, and the context written for it)."""

    text: str
    channel: str
    intents: list[str]  # the requests' intents, in order
    labelled: list[tuple[int, int, str]] = field(default_factory=list)


@dataclass
class Ingredients:
    frames: dict
    contexts: dict  # intent -> {"context": [...], "short_requests": [...], "requests": [...], "later_requests": [...]}

    @classmethod
    @lru_cache(maxsize=2)
    def load(cls, frames: Path = FRAMES, contexts: Path = CONTEXTS) -> "Ingredients":
        try:
            return cls(yaml.safe_load(frames.read_text(encoding="utf-8")),
                       yaml.safe_load(contexts.read_text(encoding="utf-8")) or {})
        except (OSError, yaml.YAMLError) as exc:
            raise AgentError(f"message parts could not be read: {first_line(exc)}") from None


class _Text:
    """A message being written: pieces appended with their labels, spans recorded as they land."""

    def __init__(self):
        self.parts: list[str] = []
        self.length = 0
        self.labelled: list[tuple[int, int, str]] = []

    def add(self, piece: str, intent: str | None = None, before: str = "") -> None:
        if not piece:
            return
        self.parts.append(before)
        self.length += len(before)
        if intent:
            self.labelled.append((self.length, self.length + len(piece), intent))
        self.parts.append(piece)
        self.length += len(piece)

    def text(self) -> str:
        return "".join(self.parts)


class MessageBuilder:
    """Builds whole messages around requests, at random but reproducibly from ``rng``; ``held_out``:
    for validation (the later-request sentences training does not see)."""

    def __init__(self, rng: random.Random, ingredients: Ingredients | None = None, held_out: bool = False):
        self.rng = rng
        self.parts = ingredients or Ingredients.load()
        self.held_out = held_out

    def build(self, requests: list[tuple[str, str]], channel: str | None = None) -> Built:
        """A message asking each of ``requests`` ((query, intent), in order), in ``channel`` (else drawn)."""
        channel = channel or self.rng.choices(list(CHANNELS), weights=list(CHANNELS.values()))[0]
        asks = [self._ask(query, intent, spoken=channel in ("call", "dialogue"), later=i > 0)
                for i, (query, intent) in enumerate(requests)]
        writer = {"email": self._email, "chat": self._chat, "call": self._call, "dialogue": self._dialogue}[channel]
        text = writer(asks)
        return Built(text.text(), channel, [intent for _, intent in requests], text.labelled)

    def frame(self, text: str) -> str:
        """A whole message someone wrote (a complaint, say) inside an email's or a chat's courtesies,
        sometimes with neutral background before it."""
        r = self.rng
        background = self._pick("email", "background", 0.3)
        body = f"{background} {text}" if background else text
        if r.random() < 0.5:
            return _chatty(body, r.random() < 0.5, r) if r.random() < 0.5 else body
        greeting = self._pick("email", "greetings", 0.8)
        closing = self._pick("email", "closings", 0.4)
        sign_off = self._pick("email", "sign_offs", 0.8)
        return "".join([f"{greeting}\n\n" if greeting else "", body, f" {closing}" if closing else "",
                        f"\n\n{sign_off}\n{r.choice(FIRST)}" if sign_off else ""])

    # -- the request and what the customer says around it -------------------------------------------

    def _ask(self, query: str, intent: str, spoken: bool, later: bool = False) -> list[tuple[str, str | None]]:
        """The sentences of one request: its context (labelled with the intent), then the request
        itself: the query, or, after context, a short request that leans on it; a ``later`` request
        (not the message's first) is often a writer's later-request sentence instead."""
        r, own = self.rng, self.parts.contexts.get(intent, {})
        if later and r.random() < LATER_REQUEST_SHARE:
            written = self._later_requests(intent)
            if written:
                query = r.choice(written)
        sentences = []
        contexts = own.get("context") or []
        if contexts and r.random() < 0.55:
            for line in r.sample(contexts, k=min(len(contexts), r.choice([1, 1, 2]))):
                sentences.append((self.fill(line), intent))
        if r.random() < 0.2:
            sentences.insert(0, (self.fill(r.choice(self._frame("background", spoken))), None))
        if sentences and own.get("short_requests") and r.random() < 0.25:
            sentences.append((self.fill(r.choice(own["short_requests"])), intent))
        elif sentences and r.random() < 0.08:
            sentences.append((self.fill(r.choice(self.parts.frames["generic_requests"])), intent))
        elif own.get("requests") and r.random() < 0.08:
            sentences.append((self.fill(r.choice(own["requests"])), intent))
        else:
            sentences.append((self._detailed(query), intent))
        if r.random() < 0.3:
            sentences.append((self._detail_sentence(), intent))
        return sentences

    def _later_requests(self, intent: str) -> list[str]:
        """The intent's later-request sentences this builder may use: every ``HELD_OUT_EVERY``-th for
        validation, the rest for training."""
        written = self.parts.contexts.get(intent, {}).get("later_requests") or []
        return [s for k, s in enumerate(written) if (k % HELD_OUT_EVERY == HELD_OUT_EVERY - 1) == self.held_out]

    def _detailed(self, query: str) -> str:
        query = query.strip()
        return query[:1].upper() + query[1:] if query and self.rng.random() < 0.7 else query

    def _detail_sentence(self) -> str:
        detail = self.rng.choice(DETAILS)(self.rng)
        return detail[:1].upper() + detail[1:] + "."

    def _frame(self, key: str, spoken: bool = False) -> list[str]:
        section = self.parts.frames["call" if spoken else self.rng.choice(["email", "email", "chat"])]
        return section.get(key) or self.parts.frames["email"].get(key) or [""]

    def fill(self, line: str) -> str:
        r = self.rng
        values = {"name": r.choice(FIRST), "full_name": f"{r.choice(FIRST)} {r.choice(LAST)}", "agent": r.choice(FIRST),
                  "amount": _amount(r), "date": _date(r), "card4": _digits(r, 4), "reference": _reference(r),
                  "phone": _phone(r), "email": _email(r), "merchant": r.choice(MERCHANTS),
                  "country": r.choice(COUNTRIES), "city": r.choice(CITIES)}
        return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), line)

    def _pick(self, section: str, key: str, chance: float = 1.0) -> str | None:
        options = self.parts.frames.get(section, {}).get(key) if section else self.parts.frames.get(key)
        if not options or self.rng.random() >= chance:
            return None
        return self.fill(self.rng.choice(options))

    def _linker(self) -> str:
        return self._pick("", "linkers") or "Also,"

    # -- channels --------------------------------------------------------------------------------------

    def _email(self, asks) -> _Text:
        r, out = self.rng, _Text()
        subject = self._pick("email", "subjects", 0.5)
        if subject:
            out.add(f"Subject: {subject}\n\n")
        greeting = self._pick("email", "greetings", 0.85)
        if greeting:
            out.add(greeting + r.choice(["\n\n", "\n", " "]))
        opener = self._pick("email", "openers", 0.2)
        if opener:
            out.add(opener + " ")
        for i, ask in enumerate(asks):
            if i:
                out.add(r.choice(["\n\n", " "]))
                linker = self._linker() if r.random() < 0.8 else ""
                ask = _linked(ask, linker)
            for j, (sentence, intent) in enumerate(ask):
                out.add(_sentence(sentence), intent, before=" " if j else "")
        for key, chance in (("mild_annoyance", 0.12), ("urgency", 0.1)):
            extra = self._pick("email", key, chance)
            if extra:
                out.add(" " + extra)
        closing = self._pick("email", "closings", 0.55)
        if closing:
            out.add(r.choice(["\n\n", " "]) + closing)
        sign_off = self._pick("email", "sign_offs", 0.8)
        if sign_off:
            out.add(f"\n\n{sign_off}\n{r.choice(FIRST)}{' ' + r.choice(LAST) if r.random() < 0.6 else ''}")
            signature = self._pick("email", "signatures", 0.3)
            if signature:
                out.add("\n" + signature)
        quoted = self._pick("", "quoted_bank_replies", 0.1)
        if quoted:
            out.add(f"\n\nOn {_date(r)}, Kestrel Bank Support <support@kestrel.example> wrote:\n"
                    + "\n".join(f"> {line}" for line in quoted.split("\n")))
        return out

    def _chat(self, asks) -> _Text:
        r, out = self.rng, _Text()
        lower, newline = r.random() < 0.6, r.random() < 0.5
        greeting = self._pick("chat", "greetings", 0.35)
        if greeting:
            out.add(_chatty(greeting, lower, r) + ("\n" if newline else " "))
        for i, ask in enumerate(asks):
            if i:
                ask = _linked(ask, self._linker() if r.random() < 0.7 else "")
            for j, (sentence, intent) in enumerate(ask):
                out.add(_chatty(sentence, lower, r), intent, before=("\n" if newline else " ") if (i or j) else "")
        for key, chance in (("mild_annoyance", 0.12), ("closings", 0.3)):
            extra = self._pick("chat", key, chance)
            if extra:
                out.add(("\n" if newline else " ") + _chatty(extra, lower, r))
        return out

    def _call(self, asks) -> _Text:
        r, out = self.rng, _Text()
        opener = self._pick("call", "openers", 0.8)
        if opener:
            out.add(spoken(opener, r))
        for i, ask in enumerate(asks):
            if i:
                ask = _linked(ask, spoken(self._linker(), r) if r.random() < 0.7 else "")
            for sentence, intent in ask:
                out.add(spoken(sentence, r), intent, before=" " if out.length else "")
        for key, chance in (("mild_annoyance", 0.1), ("closings", 0.3)):
            extra = self._pick("call", key, chance)
            if extra:
                out.add(" " + spoken(extra, r))
        return out

    def _dialogue(self, asks) -> _Text:
        """Both sides of a call: the agent opens, the customer explains and asks, the agent follows up."""
        r, out = self.rng, _Text()
        out.add("Agent: " + spoken(self._pick("agent", "openings") or "how can I help", r, fillers=False))
        for i, ask in enumerate(asks):
            turn = "\nCustomer: "
            if i:
                out.add("\nAgent: " + spoken(self._pick("agent", "acknowledgements") or "okay", r, fillers=False))
                ask = _linked(ask, spoken(self._linker(), r) if r.random() < 0.6 else "")
            elif r.random() < 0.6:
                opener = self._pick("call", "openers")
                if opener:
                    out.add(turn + spoken(opener, r))
                    turn = " "
            context, request = ask[:-1], ask[-1:]
            if context and r.random() < 0.5:  # the agent asks in between: context, a question, then the request
                for k, (sentence, intent) in enumerate(context):
                    out.add(spoken(sentence, r), intent, before=turn if k == 0 else " ")
                out.add("\nAgent: " + spoken(self._pick("agent", "follow_ups") or "okay", r, fillers=False))
                turn, context = "\nCustomer: ", []
            for k, (sentence, intent) in enumerate(context + request):
                out.add(spoken(sentence, r), intent, before=turn if k == 0 else " ")
        if r.random() < 0.5:
            out.add("\nAgent: " + spoken(self._pick("agent", "follow_ups") or "okay", r, fillers=False))
            out.add("\nCustomer: " + spoken(self._pick("", "customer_answers") or "yes", r))
        return out


def _linked(ask: list[tuple[str, str | None]], linker: str) -> list[tuple[str, str | None]]:
    """The first sentence of a second request introduced by ``linker`` (it belongs to that request)."""
    if not linker:
        return ask
    (first, intent), rest = ask[0], ask[1:]
    joined = f"{linker} {first[:1].lower() + first[1:] if first[:2] != 'I ' else first}" if linker[-1:] in ",:" or \
        linker.lower().endswith(("and", "also", "ps")) else f"{linker} {first}"
    return [(joined, intent), *rest]


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text[-1] in ".?!:)\"'" else text + "."


def _chatty(text: str, lower: bool, rng: random.Random) -> str:
    text = text.strip().rstrip(".")
    if lower:
        text = text.lower()
    if rng.random() < 0.3:
        text = text.replace("'", "")
    if rng.random() < 0.15:
        text = re.sub(r"\byou\b", "u", re.sub(r"\bplease\b", "pls", text))
    return text


@lru_cache(maxsize=4096)
def _speech_form(text: str) -> str:
    from channels.speech_text import prepare  # numbers, amounts, dates and codes in words

    try:
        said = prepare(text)
    except Exception:  # noqa: BLE001 - a sentence the speech preparation cannot read is kept as written
        said = text
    return " ".join(re.sub(r"[^\w'£€$\s-]", " ", said.lower()).split())


def spoken(text: str, rng: random.Random, fillers: bool = True) -> str:
    """``text`` as a speech recogniser writes a caller: lower case, no punctuation, numbers in words, fillers."""
    words = _speech_form(text).split()
    if fillers and len(words) > 3:
        for _ in range(rng.choice([0, 1, 1, 2])):
            words.insert(rng.randrange(1, len(words)), rng.choice(FILLERS))
    return " ".join(words)
