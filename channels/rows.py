"""What the single-item commands print for one item, as a dict: ``support-agent transcribe``, ``call``,
``classify`` and ``reply`` print these, and ``support-agent batch`` writes the same dicts as rows, so
an archive gives the results the commands give one item at a time.

Transcription keeps the command's packing of short clips into shared Whisper windows, which changes a
clip's result with its neighbours: recordings are taken in ``groups`` (runs of short mono clips, at most
``GROUP`` of them, and each longer recording on its own), decided from the file headers alone, so a
batch that transcribes the same groups gets the transcripts the command prints for the same list.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from agent.types import AgentError, Message

from . import asr, audio, email

TRANSCRIPT_FIELDS = ("text", "language", "duration_s", "segments", "engine", "model", "seconds", "no_speech")
GROUP = 64  # short clips decoded and held at once (at most 10 s each: 41 MB of samples)
# A whole email given as a message starts with RFC 5322 header fields.
EMAIL_HEADERS = re.compile(r"\A(?:[!-9;-~]+:[^\n]*\n(?:[ \t][^\n]*\n)*){2,}", re.M)

T = TypeVar("T")


# Transcription ---------------------------------------------------------------------------------------------

@dataclass
class Prepared:
    """One recording ready for the recogniser: a short clip decoded (or the reason it could not be),
    or a longer recording the recogniser decodes window by window itself."""

    path: str
    short: bool
    samples: np.ndarray | None = None
    error: str | None = None


def is_short(path: str, pack: bool = True) -> bool:
    """Whether the recording shares Whisper windows with its neighbours: mono and at most
    ``asr.PACK_MAX_CLIP_S`` long by its header (nothing is decoded)."""
    return packable(*audio.probe(path), pack)


def packable(duration: float | None, channels: int, pack: bool = True) -> bool:
    """``is_short`` from a header already read (``audio.probe``)."""
    return pack and channels == 1 and duration is not None and duration <= asr.PACK_MAX_CLIP_S


def groups(items: Iterable[tuple[T, bool]]) -> Iterator[list[tuple[T, bool]]]:
    """``(item, short)`` pairs in order, cut into what is recognised together: runs of short clips (at
    most ``GROUP``) and each other recording alone."""
    run: list[tuple[T, bool]] = []
    for item, short in items:
        if short:
            run.append((item, short))
            if len(run) == GROUP:
                yield run
                run = []
            continue
        if run:
            yield run
            run = []
        yield [(item, short)]
    if run:
        yield run


def prepare(path: str, short: bool) -> Prepared:
    if not short:
        return Prepared(path, short)
    try:
        return Prepared(path, short, samples=audio.decode(path))
    except AgentError as exc:
        return Prepared(path, short, error=str(exc))


def transcribe_group(engine, group: Sequence[Prepared], speakers: Sequence[str], words: bool = False) -> list[dict]:
    """One row per recording of a group, in its order: ``{"file", <TRANSCRIPT_FIELDS>}``, or
    ``{"file", "error"}`` for a recording that fails (the others go on). Segments keep their words (their
    times) only with ``words``."""
    if len(group) == 1 and not group[0].short:
        path = group[0].path
        return [_transcript_row(path, lambda: engine.transcribe_file(path, speakers=speakers), words)]
    clips = [p for p in group if p.samples is not None]
    try:
        found = engine.transcribe_many([p.samples for p in clips], speakers) if clips else []
    except AgentError:
        found = [None] * len(clips)  # one at a time instead
    transcripts = {id(p): t for p, t in zip(clips, found)}
    rows = []
    for p in group:
        if p.error is not None:
            rows.append({"file": p.path, "error": p.error})
        else:
            rows.append(_transcript_row(p.path, lambda p=p: transcripts[id(p)] or engine.transcribe(p.samples, speakers),
                                        words))
    return rows


def transcribe_paths(engine, paths: Iterable[str], speakers: Sequence[str], pack: bool = True,
                     words: bool = False) -> Iterator[dict]:
    """``transcribe_group`` over recordings in order, each group decoded as it is reached."""
    for group in groups((path, is_short(path, pack)) for path in paths):
        yield from transcribe_group(engine, [prepare(path, short) for path, short in group], speakers, words)


def _transcript_row(path: str, transcribe, words: bool) -> dict:
    try:
        d = transcribe().to_dict()
    except AgentError as exc:  # this file fails; the others go on
        return {"file": path, "error": str(exc)}
    if not words:
        for segment in d["segments"]:
            del segment["words"]
    return {"file": path, **{k: d[k] for k in TRANSCRIPT_FIELDS}}


# Calls and messages ----------------------------------------------------------------------------------------

def call_row(voice, recording: str, out: str | None) -> dict:
    """Transcript, understanding and reply of a call recording; the reply is spoken into ``out`` when given."""
    result = voice.understand(recording)
    if out is not None:
        voice.speak_reply(result, out)
    return result.summary()


def classify_row(agent, text: str) -> dict:
    return {"text": text, **agent.understand(text).to_dict()}


def message_for(text: str, channel: str) -> Message:
    """A customer message; a whole RFC 5322 email is parsed and read as the email channel reads it."""
    if EMAIL_HEADERS.match(text):
        return email.to_message(email.parse(text.encode("utf-8")))
    return Message(text=text, channel=channel)


def reply_row(agent, message: Message) -> dict:
    r = agent.handle(message)
    return {"intent": r.intent, "confidence": r.confidence, "reply": r.text, "source": r.source,
            "passages": r.passages, "escalate": r.escalate, "reason": r.reason, "evidence": r.evidence,
            "intents": r.intents, "fallback_reason": r.fallback_reason, "channel": message.channel,
            "entities": [vars(e) for e in r.entities]}
