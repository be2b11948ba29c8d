"""What an ASR engine returns (``Transcript``, ``Segment``, ``Word``), and how Whisper's raw segments become it.

Segment times bound the speech: Whisper aligns every word (its alignment heads), a segment starts at
its first word and ends at its last, and one that runs over a pause of ``PAUSE_S`` or more (a pause VAD
took out of the audio Whisper heard) is cut there (``timed``). Text Whisper most likely invented rather
than heard is dropped (``invented``). Bounds then move onto where the sound starts and stops (``snap``),
and a speaker's consecutive segments are joined into turns (``joined``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from . import spoken_numbers
from .audio import SAMPLE_RATE
from .speech_detection import Speech

PAUSE_S = 1.0  # a segment is cut where its words are this far apart (a pause VAD removed, or a turn between)
# Whisper invents text on sound that is not speech (tones, music, noise that got past VAD). A segment is
# dropped when Whisper itself rates it as probably not speech and is unsure of its words (its own rule,
# and a stricter no-speech bar with a looser confidence one), when it has no letters or digits
# (".", "...", "♪"), or when it is one of the stock phrases Whisper learnt from subtitles and says with
# little confidence.
NO_SPEECH_PROB, LOW_LOGPROB = 0.6, -1.0
SURE_NO_SPEECH_PROB, UNSURE_LOGPROB = 0.8, -0.5
UNCONFIRMED_NO_SPEECH_PROB, UNCONFIRMED_LOGPROB = 0.4, -1.0  # for sound the VAD model did not call speech
STOCK_PHRASES = ("thanks for watching", "thank you for watching", "subscribe", "subtitles", "amara.org",
                 "www.", ".com", "transcribed by", "captions by")


@dataclass
class Word:
    start: float
    end: float
    word: str  # as Whisper wrote it, with its leading space
    probability: float


@dataclass
class Segment:
    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    speaker: str | None = None
    words: list[Word] = field(default_factory=list)


@dataclass
class Transcript:
    text: str
    language: str
    duration_s: float
    segments: list[Segment] = field(default_factory=list)
    engine: str = ""
    model: str = ""
    seconds: float = 0.0  # wall-clock time spent transcribing
    no_speech: bool = False  # True when the recording holds no speech (the text is then empty)

    def to_dict(self) -> dict:
        return asdict(self)

    def turns(self) -> list[dict]:
        """Consecutive segments of one speaker joined: ``[{"speaker", "start", "end", "text"}]``."""
        turns: list[dict] = []
        for s in self.segments:
            if turns and turns[-1]["speaker"] == s.speaker:
                turns[-1]["end"], turns[-1]["text"] = s.end, f"{turns[-1]['text']} {s.text}"
            else:
                turns.append({"speaker": s.speaker, "start": s.start, "end": s.end, "text": s.text})
        return turns


@dataclass
class Recognised:
    """One segment as an engine returns it, on the timeline of the audio it was given."""

    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    words: list[tuple[float, float, str, float]] = field(default_factory=list)  # start, end, word, probability

def invented(r: Recognised, confirmed: bool = True) -> bool:
    """Text Whisper most likely made up rather than heard (see STOCK_PHRASES); stricter where the VAD
    model did not vouch for speech."""
    if not any(ch.isalnum() for ch in r.text):
        return True
    if not confirmed and (r.no_speech_prob > UNCONFIRMED_NO_SPEECH_PROB or r.avg_logprob < UNCONFIRMED_LOGPROB):
        return True
    if r.no_speech_prob > NO_SPEECH_PROB and r.avg_logprob < LOW_LOGPROB:
        return True
    if r.no_speech_prob > SURE_NO_SPEECH_PROB and r.avg_logprob < UNSURE_LOGPROB:
        return True
    unsure = r.no_speech_prob > 0.3 or r.avg_logprob < UNSURE_LOGPROB
    return unsure and any(p in r.text.lower() for p in STOCK_PHRASES)


def timed(r: Recognised, speech: Speech, shift: float, base: float) -> list[Segment]:
    """``r`` on the recording's timeline: bounded by its words and cut at pauses of ``PAUSE_S``, text Whisper
    most likely invented dropped. ``shift``: where ``speech`` starts in the audio Whisper heard; ``base``:
    where the window starts in the recording."""
    def original(t: float, is_end: bool = False) -> float:
        return speech.original(max(t - shift, 0.0), is_end)

    words = [Word(*speech.span(max(w[0] - shift, 0.0), max(w[1] - shift, 0.0)), w[2], round(float(w[3]), 3))
             for w in r.words if w[2].strip()]
    if not words:  # no word came with a time: the segment's own bounds
        words = [Word(original(r.start), original(r.end, True), " " + r.text, 1.0)]
    runs = [[words[0]]]
    for w in words[1:]:
        if w.start - runs[-1][-1].end >= PAUSE_S:
            runs.append([w])
        else:
            runs[-1].append(w)
    segments = []
    for run in runs:
        # Whisper's own text where the segment is whole: joined words can differ in spacing ("0800 -555")
        heard = r.text if len(runs) == 1 else "".join(w.word for w in run).strip()
        start, end = run[0].start, run[-1].end
        if invented(Recognised(start, end, heard, r.avg_logprob, r.no_speech_prob), speech.confirmed(start, end)):
            continue
        for w in run:
            w.start, w.end = round(base + w.start, 2), round(base + w.end, 2)
        segments.append(Segment(start=run[0].start, end=run[-1].end, text=spoken_numbers.normalise(heard),
                                avg_logprob=round(r.avg_logprob, 3), no_speech_prob=round(r.no_speech_prob, 3),
                                words=run))
    return segments


SNAP_FRAME = 160  # 10 ms
SNAP_EARLY_S, SNAP_LATE_S = 0.3, 0.5  # how far before and after its first word's start a segment's onset is looked for
AUDIBLE_DB, AUDIBLE_DBFS = 15.0, -55.0  # speech frames: this far above the window's noise floor, and this loud


def joined(segments: list[Segment], longest: float) -> list[Segment]:
    """Consecutive segments of one speaker less than ``PAUSE_S`` apart joined (up to ``longest`` seconds): a
    turn is read as one stretch of speech, its pauses between sentences included."""
    out: list[Segment] = []
    for s in segments:
        last = out[-1] if out else None
        if last and last.speaker == s.speaker and s.start - last.end < PAUSE_S and s.end - last.start <= longest:
            n, m = max(len(last.words), 1), max(len(s.words), 1)
            last.avg_logprob = round((n * last.avg_logprob + m * s.avg_logprob) / (n + m), 3)
            last.no_speech_prob = round((n * last.no_speech_prob + m * s.no_speech_prob) / (n + m), 3)
            last.end, last.text, last.words = max(last.end, s.end), f"{last.text} {s.text}", last.words + s.words
        else:
            out.append(s)
    return out


def snap(segments: list[Segment], buf: np.ndarray, base: float) -> None:
    """Segment bounds moved onto where the sound starts and stops: Whisper's alignment puts a segment's
    first word at the start of the audio it was given (a VAD chunk, padded), and often ends its last
    word early. Each bound moves to the first (last) audible 10 ms near it, never past a neighbour."""
    n = buf.size // SNAP_FRAME
    if n < 8 or not segments:
        return
    energy = 10 * np.log10(np.mean(buf[:n * SNAP_FRAME].reshape(n, -1).astype(np.float64) ** 2, axis=1) + 1e-12)
    audible = energy > max(np.percentile(energy, 10) + AUDIBLE_DB, AUDIBLE_DBFS)
    rate = SAMPLE_RATE / SNAP_FRAME

    def heard(a: float, b: float) -> np.ndarray:
        """The start times of the audible frames between ``a`` and ``b`` (the recording's timeline)."""
        lo, hi = max(int((a - base) * rate), 0), max(int((b - base) * rate), 0)
        return base + (lo + np.flatnonzero(audible[lo:hi])) / rate

    for i, s in enumerate(segments):
        before = segments[i - 1].end if i else base
        after = segments[i + 1].start if i + 1 < len(segments) else base + n / rate
        first_end, last_start = (s.words[0].end, s.words[-1].start) if s.words else (s.end, s.start)
        on = heard(max(s.start - SNAP_EARLY_S, before), min(s.start + SNAP_LATE_S, first_end))
        off = heard(max(s.end - SNAP_LATE_S, last_start), min(s.end + SNAP_EARLY_S, after))
        start = round(float(on[0]), 2) if on.size else s.start
        end = round(float(off[-1] + 1 / rate), 2) if off.size else s.end
        if end > start:
            s.start, s.end = start, end
            if s.words:
                s.words[0].start, s.words[-1].end = max(s.words[0].start, start), min(s.words[-1].end, end)


def clip_owner(t: float, spans: list[tuple[float, float]], gap: float) -> int:
    """The packed clip a word at ``t`` belongs to: the one whose span, widened by half a gap, holds it."""
    for k, (start, end) in enumerate(spans):
        if t < end + gap / 2:
            return k
    return len(spans) - 1

