"""Where the speech is in a recording, for the ASR engines: Silero VAD, plus loud stretches it missed.

Silero VAD (the model faster-whisper bundles) scores noisy 8 kHz telephone speech as non-speech, so
stretches well above the recording's noise floor that it did not take are kept too, as unconfirmed:
Whisper must then be sure of what it heard there (``transcript.invented``). ``Speech`` joins the speech
parts of a recording and maps times in the joined audio back to the recording.
"""
from __future__ import annotations

import numpy as np

from .audio import SAMPLE_RATE


class Speech:
    """The speech parts of one audio array (Silero VAD), joined, with the way back to original times."""

    def __init__(self, samples: np.ndarray, chunks: list[dict]):
        self.chunks = chunks
        self.audio = (np.concatenate([samples[c["start"]:c["end"]] for c in chunks]) if chunks
                      else np.zeros(0, np.float32))
        self._ends = np.cumsum([c["end"] - c["start"] for c in chunks])

    def confirmed(self, start: float, end: float) -> bool:
        """Whether most of ``start``..``end`` (original seconds) lies in speech the VAD model vouched for."""
        a, b = start * SAMPLE_RATE, max(end * SAMPLE_RATE, start * SAMPLE_RATE + 1)
        inside = sum(max(0.0, min(b, c["end"]) - max(a, c["start"])) for c in self.chunks if c.get("confirmed", True))
        return inside >= 0.5 * (b - a)

    def span(self, start: float, end: float) -> tuple[float, float]:
        """A word's bounds in the joined speech to the original audio: a word Whisper placed across the
        joint of two chunks ends where its first chunk does, not after the silence between them."""
        a, b = self.original(start), self.original(end, is_end=True)
        if b - a > end - start + 1e-3:
            chunk = next(c for c in reversed(self.chunks) if c["start"] <= a * SAMPLE_RATE + 1)
            b = chunk["end"] / SAMPLE_RATE
        return a, max(a, b)

    def original(self, t: float, is_end: bool = False) -> float:
        """Seconds in the joined speech to seconds in the original audio."""
        if not self.chunks:
            return t
        sample = t * SAMPLE_RATE
        i = int(np.searchsorted(self._ends, sample, side="left" if is_end else "right"))
        i = min(i, len(self.chunks) - 1)
        before = self._ends[i - 1] if i else 0
        within = min(max(sample - before, 0), self._ends[i] - before)  # never past the speech it came from
        return float(self.chunks[i]["start"] + within) / SAMPLE_RATE


def vad_chunks(samples: np.ndarray) -> list[dict]:
    """Where the speech is: ``[{"start", "end", "confirmed"}]`` in samples, in time order.

    Silero VAD (faster-whisper's settings, except that a run of speech longer than a minute is split at
    a short pause, so that a long window can always be cut between words) gives ``confirmed`` chunks.
    Silero misses much of noisy telephone speech (its score falls below 0.2 on 300-3400 Hz audio at
    15 dB SNR, where Whisper still hears every word), so stretches well above the recording's noise
    floor that it did not take are kept too, as unconfirmed: Whisper must then be sure (see ``invented``).
    Steady sounds (hum, tones, constant noise) never rise above their own floor.
    """
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    if samples.size < SAMPLE_RATE // 10:
        return []
    chunks = [{**c, "confirmed": True} for c in
              get_speech_timestamps(samples, VadOptions(max_speech_duration_s=60.0), sampling_rate=SAMPLE_RATE)]
    chunks += _loud_stretches(samples, chunks)
    ordered: list[dict] = []
    for c in sorted(chunks, key=lambda c: c["start"]):  # padded stretches may touch: never repeat audio
        if ordered and c["start"] < ordered[-1]["end"]:
            c = {**c, "start": ordered[-1]["end"]}
        if c["end"] > c["start"]:
            ordered.append(c)
    return ordered


FRAME = 512  # 32 ms
LOUD_DB, QUIET_DBFS = 6.0, -50.0  # above the noise floor by this much, and above this absolute level
SHORTEST_S, PAD_S = 0.3, 0.3  # a loud stretch lasts this long at least ("yes"); widened this much each side


def _loud_stretches(samples: np.ndarray, taken: list[dict]) -> list[dict]:
    """The parts of loud stretches (above the noise floor, ``SHORTEST_S`` or longer) that ``taken`` leaves out."""
    n = samples.size // FRAME
    if n < 8:
        return []
    energy = 10 * np.log10(np.mean(samples[:n * FRAME].reshape(n, FRAME).astype(np.float64) ** 2, axis=1) + 1e-10)
    active = (energy > np.percentile(energy, 10) + LOUD_DB) & (energy > QUIET_DBFS)
    active = _close_gaps(active, int(0.5 * SAMPLE_RATE / FRAME))
    loud = np.zeros(samples.size, bool)
    start = None
    for i, on in enumerate(np.append(active, False)):
        if on and start is None:
            start = i
        elif not on and start is not None:
            if (i - start) * FRAME >= SHORTEST_S * SAMPLE_RATE:
                pad = int(PAD_S * SAMPLE_RATE)  # word onsets and endings are quiet
                loud[max(start * FRAME - pad, 0):i * FRAME + pad] = True
            start = None
    for c in taken:
        loud[c["start"]:c["end"]] = False
    edges = np.flatnonzero(np.diff(np.concatenate([[0], loud.astype(np.int8), [0]])))
    return [{"start": int(a), "end": int(b), "confirmed": False} for a, b in zip(edges[::2], edges[1::2])
            if b - a >= FRAME]


def _close_gaps(active: np.ndarray, longest: int) -> np.ndarray:
    """Fill runs of False no longer than ``longest`` frames between True frames."""
    out = active.copy()
    on = np.flatnonzero(active)
    for a, b in zip(on[:-1], on[1:]):
        if 1 < b - a <= longest + 1:
            out[a:b] = True
    return out
