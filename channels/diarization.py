"""Who spoke when on a mono call: diarization engines behind one interface, and the speaker labels.

An engine (``Diarizer``) finds anonymous speakers in the audio: ``resemblyzer`` (the default; a GE2E
speaker encoder whose weights ship inside the PyPI package, ``diarize_resemblyzer.py``) or ``pyannote``
(pyannote.audio's pipeline, for users with model-hub access, ``diarize_pyannote.py``). Then, here, every
word of the transcript goes to the speaker whose turn covers it, segments are cut where the speaker
changes, and the speakers are named as on a stereo call: the agent is the one who greets with the
business's name (or a greeting such as "thank you for calling"), else the one who speaks first
(``diarization_agent = "first"`` always takes the first); the other is the customer.
"""
from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass

import numpy as np

from agent.knowledge import KnowledgeBase
from agent.settings import Settings
from agent.types import AgentError

from . import adapter, adapter_name

GREETINGS = ("thank you for calling", "thanks for calling", "how can i help", "how may i help", "welcome to",
             "you're through to", "you are through to", "you're speaking to", "you are speaking to", "speaking",
             "how can we help")
ENGINE_PREFIX = "diarize_"  # each engine is channels/diarize_<name>.py
SPEECH_GAP_S = 0.3  # words closer than this are one stretch of speech for the engine
GREETING_WORDS = 40  # how far into a speaker's words the greeting is looked for


@dataclass
class SpeakerTurn:
    start: float
    end: float
    speaker: int  # anonymous: 0, 1, ... in the order the engine found them


@dataclass
class Options:
    speakers: int = 2  # how many speakers a mono call has (1: no diarization)
    agent: str = "greeting"  # "greeting" (the one who greets with the business's name, else the first) or "first"
    business: str = ""  # the business's name, as the agent says it when answering

    @classmethod
    def from_settings(cls, settings: Settings) -> "Options":
        _engine_name(settings)  # an unknown engine fails before any model loads
        if settings.diarization_agent not in ("greeting", "first"):
            raise AgentError(f"setting 'diarization_agent' is 'greeting' or 'first', not "
                             f"'{settings.diarization_agent}'")
        if settings.diarization_speakers < 1:
            raise AgentError(f"a call has at least 1 speaker, not {settings.diarization_speakers} "
                             "(setting 'diarization_speakers', --speakers)")
        return cls(settings.diarization_speakers, settings.diarization_agent, _business_name(settings))


class Diarizer:
    """An engine: anonymous speaker turns in 16 kHz mono audio."""

    name = ""

    def turns(self, samples: np.ndarray, speech: list[tuple[float, float]], speakers: int) -> list[SpeakerTurn]:
        """Who spoke when, for ``speakers`` speakers at most; ``speech`` is where the words are (seconds).
        One speaker's turns only where the audio holds one voice."""
        raise NotImplementedError


def _business_name(settings: Settings) -> str:
    try:
        return KnowledgeBase.load(settings.knowledge_base).business.get("name", "")
    except AgentError:  # a knowledge base that cannot be read leaves the first speaker as the agent
        return ""


def load_engine(settings: Settings) -> Diarizer:
    """The engine named by ``diarization_engine``; its module (and torch) is imported only now."""
    return adapter(ENGINE_PREFIX, _engine_name(settings))(settings)


def _engine_name(settings: Settings) -> str:
    return adapter_name(ENGINE_PREFIX, settings.diarization_engine, "diarization", Settings.diarization_engine)


def speech_spans(segments) -> list[tuple[float, float]]:
    """Where the words are: word spans closer than ``SPEECH_GAP_S`` joined."""
    spans: list[list[float]] = []
    for w in sorted((w for s in segments for w in s.words), key=lambda w: w.start):
        if spans and w.start - spans[-1][1] < SPEECH_GAP_S:
            spans[-1][1] = max(spans[-1][1], w.end)
        else:
            spans.append([w.start, w.end])
    return [(a, b) for a, b in spans if b > a]


def label(samples: np.ndarray, segments: list, diarizer: Diarizer, options: Options, names) -> list:
    """``segments`` (with words) of a mono call, cut where the speaker changes and labelled with ``names``
    (customer and agent as on a stereo call); unchanged where the engine hears one voice."""
    turns = diarizer.turns(samples, speech_spans(segments), options.speakers)
    if len({t.speaker for t in turns}) < 2:
        return segments
    cut: list = []
    for s in segments:
        cut += _split(s, [_speaker_of(w, turns) for w in s.words] if s.words else [_speaker_of(s, turns)])
    if len({s.speaker for s in cut}) < 2:  # the second voice holds no word
        return segments
    naming = _names(cut, options, names)
    for s in cut:
        s.speaker = naming[s.speaker]
    return cut


def _speaker_of(span, turns: list[SpeakerTurn]) -> int:
    """The speaker whose turns overlap ``span`` most, or the nearest turn's where none does."""
    overlap: dict[int, float] = {}
    for t in turns:
        overlap[t.speaker] = overlap.get(t.speaker, 0.0) + max(0.0, min(span.end, t.end) - max(span.start, t.start))
    best = max(overlap, key=overlap.get)
    if overlap[best] > 0:
        return best
    middle = (span.start + span.end) / 2
    return min(turns, key=lambda t: min(abs(middle - t.start), abs(middle - t.end))).speaker


def _split(segment, speakers: list[int]) -> list:
    """``segment`` cut into runs of one speaker's words (its text rebuilt from each run's words)."""
    from .spoken_numbers import normalise

    if len(set(speakers)) == 1:
        return [dataclasses.replace(segment, speaker=speakers[0])]
    runs: list = []
    for w, who in zip(segment.words, speakers):
        if runs and runs[-1][0] == who:
            runs[-1][1].append(w)
        else:
            runs.append((who, [w]))
    last = len(runs) - 1  # the segment's outer bounds are where its sound starts and stops (asr._snap)
    return [dataclasses.replace(segment, start=segment.start if i == 0 else ws[0].start,
                                end=segment.end if i == last else ws[-1].end, speaker=who, words=ws,
                                text=normalise("".join(w.word for w in ws).strip()))
            for i, (who, ws) in enumerate(runs)]


def _names(segments: list, options: Options, names) -> dict[int, str]:
    """Anonymous speaker -> label: the agent's, the customer's, then "speaker 3", ...
    ``names`` lists the parties as ``asr_speakers`` does (customer, agent by default)."""
    order = list(dict.fromkeys(s.speaker for s in sorted(segments, key=lambda s: s.start)))
    agent = order[0]
    if options.agent == "greeting":
        scores = {who: _greets(" ".join(s.text for s in segments if s.speaker == who), options.business)
                  for who in order}
        if max(scores.values()) > 0 and list(scores.values()).count(max(scores.values())) == 1:
            agent = max(scores, key=scores.get)
    agent_name = "agent" if "agent" in names else (names[1] if len(names) > 1 else "agent")
    customer_name = "customer" if "customer" in names else (names[0] if names else "customer")
    others = [who for who in order if who != agent]
    naming = {agent: agent_name, others[0]: customer_name}
    naming.update({who: f"speaker {i}" for i, who in enumerate(others[1:], 3)})
    return naming


def _greets(said: str, business: str) -> int:
    """2 when the first words say the business's name (as a recogniser may spell it), 1 for a greeting."""
    words = re.findall(r"[a-z']+", said.lower())[:GREETING_WORDS]
    name = re.findall(r"[a-z']+", business.lower())
    if name and any(all(difflib.SequenceMatcher(None, a, b).ratio() >= 0.8 for a, b in zip(words[i:], name))
                    for i in range(len(words) - len(name) + 1)):
        return 2
    opening = " ".join(words)
    return int(any(g in opening for g in GREETINGS))
