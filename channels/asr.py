"""Speech recognition engines behind one interface. Each returns a ``Transcript``.

Two engines run the same Whisper weights:

* ``faster-whisper``: CTranslate2, int8 on CPU and float16 on CUDA (``asr_compute_type``). The faster one
  on every machine we measured, so ``asr_engine = "auto"`` picks it whenever it is installed.
* ``openai-whisper``: OpenAI's PyTorch reference implementation, float32 on CPU and float16 on CUDA. The
  packaged weights ship in CTranslate2's format; they are converted once into a checkpoint that
  ``whisper.load_model`` accepts (``agent/whisper_weights.py``) and cached in ``cache_dir``.

Both share one front end, here, so that they see the same audio and return the same ``Transcript``:

* Voice-activity detection keeps only speech: Silero VAD (the model faster-whisper bundles), plus loud
  stretches it missed (it scores noisy 8 kHz telephone speech as non-speech), which Whisper must then
  recognise with confidence. A recording with no speech returns an empty text and ``no_speech = True``,
  usually without the decoder ever running, so Whisper gets no chance to invent text on silence;
  segments Whisper itself rates as non-speech with low confidence, and its stock subtitle phrases, are
  dropped as well (tones, music and noise that got past VAD; see ``_invented``).
* Long recordings are decoded and recognised in windows of at most ``WINDOW_S`` seconds per channel,
  cut in a pause, so memory stays flat however long the recording is (an hour of 16 kHz float32 would
  be 230 MB of samples alone, and several times that in features).
* Segment times bound the speech: Whisper aligns every word (its alignment heads), a segment starts at
  its first word and ends at its last, and one that runs over a pause of ``PAUSE_S`` or more (a pause
  VAD took out of the audio Whisper heard) is cut there. Segments carry their words (``Word``).
* Stereo two-party recordings (one party per channel) are recognised per channel and merged in time
  order, each segment labelled with its speaker: channel 0 (left) is the customer and channel 1
  (right) the agent by default (``speakers``). Stereo files whose channels carry the same signal are
  treated as mono. A mono call is diarized (``channels/diarization.py``): who spoke which words, with
  the same speaker labels (setting ``diarization_speakers``; 1 turns it off).
* Numbers are written as people said them (``spoken_numbers``): "4-8-2-1-3" is 48213, "42 pounds 50"
  is £42.50. The words keep what Whisper wrote.
* Many short clips are packed several to one 30-second Whisper window (``transcribe_many``): Whisper
  always encodes a full 30 s window, so a 3-second clip alone pays for ten times its length.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from agent import store
from agent.settings import Settings
from agent.types import AgentError, first_line

from . import audio as audio_io
from . import diarization, engine_class, spoken_numbers
from .audio import SAMPLE_RATE

DEFAULT_SPEAKERS = ("customer", "agent")  # channel 0 (left), channel 1 (right) of a two-party recording
WINDOW_S = 300.0  # audio held per channel at once; a window is cut in a pause
BLOCK_S = 30.0  # decoding block
PACK_WINDOW_S = 28.0  # packed clips fill a Whisper window up to this (it holds 30 s)
PACK_GAP_S = 1.0  # silence between packed clips
PACK_MAX_CLIP_S = 10.0  # clips with more speech than this are recognised on their own
SAME_CHANNELS = 0.01  # stereo whose channel difference has < 1% of the energy is one signal, not two parties
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
class _Recognised:
    """One segment as an engine returns it, on the timeline of the audio it was given."""

    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    words: list[tuple[float, float, str, float]] = field(default_factory=list)  # start, end, word, probability


def cuda_available() -> bool:
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count() > 0
    except Exception:  # a broken CUDA install means: no usable GPU
        return False


def _cpu_count() -> int:
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class _Speech:
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


def _vad_chunks(samples: np.ndarray) -> list[dict]:
    """Where the speech is: ``[{"start", "end", "confirmed"}]`` in samples, in time order.

    Silero VAD (faster-whisper's settings, except that a run of speech longer than a minute is split at
    a short pause, so that a long window can always be cut between words) gives ``confirmed`` chunks.
    Silero misses much of noisy telephone speech (its score falls below 0.2 on 300-3400 Hz audio at
    15 dB SNR, where Whisper still hears every word), so stretches well above the recording's noise
    floor that it did not take are kept too, as unconfirmed: Whisper must then be sure (see ``_invented``).
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


class WhisperEngine:
    """What both Whisper engines share; subclasses load a model and implement ``_recognise``."""

    name = ""

    def __init__(self, settings: Settings):
        self.model_name = settings.asr_model
        self.beam_size = max(int(settings.asr_beam_size), 1)
        self.language = settings.language or None
        self.cache_dir = settings.cache_dir
        self.settings = settings
        self.diarization = diarization.Options.from_settings(settings)

    @cached_property
    def diarizer(self) -> diarization.Diarizer:
        """Loaded on the first mono call that is diarized."""
        return diarization.load_engine(self.settings)

    # The engine-specific part -------------------------------------------------------------------
    def _recognise(self, samples: np.ndarray, language: str | None,
                   words: bool = True) -> tuple[list[_Recognised], str]:
        """Whisper on speech-only audio: segments (with word timings) on that audio's timeline, and the
        language."""
        raise NotImplementedError

    # One recording --------------------------------------------------------------------------------
    def transcribe(self, samples: np.ndarray, speakers: Sequence[str] = DEFAULT_SPEAKERS) -> Transcript:
        """Mono samples (n,), or one row per channel (channels, n), at 16 kHz."""
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim == 2:
            blocks = (samples[:, i:i + int(BLOCK_S * SAMPLE_RATE)]
                      for i in range(0, samples.shape[1], int(BLOCK_S * SAMPLE_RATE)))
        else:
            blocks = (samples[i:i + int(BLOCK_S * SAMPLE_RATE)]
                      for i in range(0, len(samples), int(BLOCK_S * SAMPLE_RATE)))
        return self.transcribe_blocks(blocks, speakers)

    def transcribe_file(self, path: str | Path, speakers: Sequence[str] = DEFAULT_SPEAKERS,
                        split_channels: bool = True) -> Transcript:
        """Decode and recognise in bounded windows; a stereo two-party recording gives speaker turns."""
        return self.transcribe_blocks(audio_io.stream(path, split_channels=split_channels, block_s=BLOCK_S),
                                      speakers)

    def transcribe_blocks(self, blocks: Iterable[np.ndarray],
                          speakers: Sequence[str] = DEFAULT_SPEAKERS) -> Transcript:
        """Recognise a stream of 16 kHz blocks: (n,) mono, or (channels, n)."""
        started = time.perf_counter()
        window = int(WINDOW_S * SAMPLE_RATE)
        buffers: list[np.ndarray] | None = None  # one per channel recognised
        offsets: list[int] = []
        split: bool | None = None
        total = 0
        found: list[Segment] = []
        heard: list[np.ndarray] = []  # the mono audio, kept only to be diarized
        diarize = self.diarization.speakers > 1
        language: str | None = self.language
        for block in blocks:
            block = np.asarray(block, dtype=np.float32)
            block = block.reshape(1, -1) if block.ndim == 1 else block
            total += block.shape[1]
            if buffers is None:
                buffers, offsets = [np.zeros(0, np.float32)] * block.shape[0], [0] * block.shape[0]
            for c in range(len(buffers)):
                buffers[c] = np.concatenate([buffers[c], block[c]]) if buffers[c].size else block[c].copy()
            if len(buffers) > 1 and split is None and buffers[0].size >= window:
                split, buffers = self._decide_split(buffers)
            for c, buf in enumerate(buffers):
                while buf.size >= window:
                    cut, segs, language = self._window(buf, offsets[c], language, final=False)
                    found += self._label(segs, c, split, speakers)
                    if diarize and len(buffers) == 1:
                        heard.append(buf[:cut])
                    buf, offsets[c] = buf[cut:].copy(), offsets[c] + cut
                buffers[c] = buf
        if buffers is None:
            raise AgentError("no audio samples to transcribe")
        if len(buffers) > 1 and split is None:
            split, buffers = self._decide_split(buffers)
        for c, buf in enumerate(buffers):
            if buf.size:
                _, segs, language = self._window(buf, offsets[c], language, final=True)
                found += self._label(segs, c, split, speakers)
                if diarize and len(buffers) == 1:
                    heard.append(buf)
        found.sort(key=lambda s: (s.start, s.end))
        return self._transcript(found, language, total / SAMPLE_RATE, time.perf_counter() - started,
                                np.concatenate(heard) if heard else None, speakers)

    @staticmethod
    def _decide_split(buffers: list[np.ndarray]) -> tuple[bool, list[np.ndarray]]:
        """Two parties on two channels, or one signal copied to both (then mixed to mono)?"""
        n = min(b.size for b in buffers)
        first, others = buffers[0][:n].astype(np.float64), [b[:n].astype(np.float64) for b in buffers[1:]]
        energy = float((first ** 2).sum() + sum((o ** 2).sum() for o in others))
        difference = float(sum(((first - o) ** 2).sum() for o in others))
        if energy > 0 and difference > SAME_CHANNELS * energy:
            return True, buffers
        return False, [np.mean(buffers, axis=0).astype(np.float32)]

    @staticmethod
    def _label(segments: list[Segment], channel: int, split: bool | None, speakers: Sequence[str]) -> list[Segment]:
        if split:
            for s in segments:
                s.speaker = speakers[channel] if channel < len(speakers) else f"channel {channel}"
        return segments

    def _window(self, buf: np.ndarray, offset: int, language: str | None,
                final: bool) -> tuple[int, list[Segment], str | None]:
        """Recognise ``buf`` up to a pause (all of it if ``final``); the cut, segments on the file's timeline."""
        chunks = _vad_chunks(buf)
        cut = buf.size
        if not final and len(chunks) > 1 and chunks[-1]["start"] >= buf.size // 2:
            cut = chunks[-1]["start"]  # the last speech run may go on in the next block: keep it
            chunks = chunks[:-1]
        segments: list[Segment] = []
        if chunks:
            speech = _Speech(buf, chunks)
            recognised, language = self._recognise(speech.audio, language)
            for r in recognised:
                segments += _timed(r, speech, 0.0, offset / SAMPLE_RATE)
            _snap(segments, buf[:cut], offset / SAMPLE_RATE)
        return cut, segments, language

    def _transcript(self, segments: list[Segment], language: str | None, duration: float, seconds: float,
                    mono: np.ndarray | None = None, speakers: Sequence[str] = DEFAULT_SPEAKERS) -> Transcript:
        """The transcript of time-ordered ``segments``; ``mono``, the audio of a mono recording, is diarized."""
        if mono is not None and segments and self.diarization.speakers > 1:
            segments = diarization.label(mono, segments, self.diarizer, self.diarization, speakers)
        segments = _joined(segments)
        for s in segments:  # rounding and alignment never put speech past the end of the audio
            s.end = min(s.end, round(duration, 2))
            s.start = min(s.start, s.end)
            for w in s.words:
                w.end = min(w.end, s.end)
                w.start = min(w.start, w.end)
        return Transcript(text=" ".join(s.text for s in segments), language=language or self.language or "",
                          duration_s=round(duration, 2), segments=segments, engine=self.name,
                          model=self.model_name, seconds=round(seconds, 3), no_speech=not segments)

    # Many short clips -----------------------------------------------------------------------------
    def transcribe_many(self, clips: Sequence[np.ndarray],
                        speakers: Sequence[str] = DEFAULT_SPEAKERS) -> list[Transcript]:
        """Mono 16 kHz clips, each transcribed as if alone, several packed into each Whisper window."""
        started = time.perf_counter()
        results: list[Transcript | None] = [None] * len(clips)
        packable: list[tuple[int, _Speech]] = []
        for i, clip in enumerate(clips):
            clip = np.asarray(clip, dtype=np.float32)
            speech = _Speech(clip, _vad_chunks(clip))
            duration = clip.size / SAMPLE_RATE
            if not speech.chunks:
                results[i] = self._transcript([], None, duration, 0.0)
            elif speech.audio.size > PACK_MAX_CLIP_S * SAMPLE_RATE:
                results[i] = self.transcribe(clip, speakers)
            else:
                packable.append((i, speech))
        gap = np.zeros(int(PACK_GAP_S * SAMPLE_RATE), np.float32)
        limit = int(PACK_WINDOW_S * SAMPLE_RATE)
        pack: list[tuple[int, _Speech]] = []
        packs: list[list[tuple[int, _Speech]]] = []
        for item in packable:
            used = sum(s.audio.size + gap.size for _, s in pack)
            if pack and used + item[1].audio.size > limit:
                packs.append(pack)
                pack = []
            pack.append(item)
        if pack:
            packs.append(pack)
        for pack in packs:
            self._recognise_pack(pack, gap, clips, results, speakers)
        spent = time.perf_counter() - started
        for r in results:  # throughput is what packing is for: report each clip's share of the time
            r.seconds = round(spent / max(len(clips), 1), 3)
        return results

    def _recognise_pack(self, pack: list[tuple[int, _Speech]], gap: np.ndarray, clips, results, speakers) -> None:
        pieces, spans, t = [], [], 0.0
        for _, speech in pack:
            length = speech.audio.size / SAMPLE_RATE
            spans.append((t, t + length))
            pieces += [speech.audio, gap]
            t += length + gap.size / SAMPLE_RATE
        recognised, language = self._recognise(np.concatenate(pieces), self.language)
        per_clip: list[list[Segment]] = [[] for _ in pack]
        for r in recognised:
            owned: dict[int, list[tuple[float, float, str, float]]] = {}
            for w in r.words:
                owner = _owner((w[0] + w[1]) / 2, spans, gap.size / SAMPLE_RATE)
                owned.setdefault(owner, []).append(w)
            for k, ws in owned.items():
                mine = _Recognised(ws[0][0], ws[-1][1], "".join(w[2] for w in ws).strip(), r.avg_logprob,
                                   r.no_speech_prob, ws)
                per_clip[k] += _timed(mine, pack[k][1], spans[k][0], 0.0)
        for k, (i, _) in enumerate(pack):
            if per_clip[k]:
                results[i] = self._transcript(per_clip[k], language, clips[i].size / SAMPLE_RATE, 0.0,
                                              np.asarray(clips[i], np.float32), speakers)
            else:  # speech Whisper skipped inside the pack: give the clip its own window
                results[i] = self.transcribe(clips[i], speakers)


def _invented(r: _Recognised, confirmed: bool = True) -> bool:
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


def _timed(r: _Recognised, speech: _Speech, shift: float, base: float) -> list[Segment]:
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
        if _invented(_Recognised(start, end, heard, r.avg_logprob, r.no_speech_prob), speech.confirmed(start, end)):
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


def _joined(segments: list[Segment]) -> list[Segment]:
    """Consecutive segments of one speaker less than ``PAUSE_S`` apart joined (up to ``BLOCK_S`` long): a turn
    is read as one stretch of speech, its pauses between sentences included."""
    out: list[Segment] = []
    for s in segments:
        last = out[-1] if out else None
        if last and last.speaker == s.speaker and s.start - last.end < PAUSE_S and s.end - last.start <= BLOCK_S:
            n, m = max(len(last.words), 1), max(len(s.words), 1)
            last.avg_logprob = round((n * last.avg_logprob + m * s.avg_logprob) / (n + m), 3)
            last.no_speech_prob = round((n * last.no_speech_prob + m * s.no_speech_prob) / (n + m), 3)
            last.end, last.text, last.words = max(last.end, s.end), f"{last.text} {s.text}", last.words + s.words
        else:
            out.append(s)
    return out


def _snap(segments: list[Segment], buf: np.ndarray, base: float) -> None:
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


def _owner(t: float, spans: list[tuple[float, float]], gap: float) -> int:
    """The packed clip a word at ``t`` belongs to: the one whose span, widened by half a gap, holds it."""
    for k, (start, end) in enumerate(spans):
        if t < end + gap / 2:
            return k
    return len(spans) - 1


class FasterWhisperEngine(WhisperEngine):
    """Whisper through CTranslate2: int8 on CPU, float16 on CUDA."""

    name = "faster-whisper"

    def __init__(self, settings: Settings):
        super().__init__(settings)
        from faster_whisper import WhisperModel

        device = settings.asr_device
        if device == "auto":
            device = "cuda" if cuda_available() else "cpu"
        compute_type = settings.asr_compute_type
        if compute_type == "auto":
            compute_type = "float16" if device == "cuda" else "int8"
        self.device, self.compute_type = device, compute_type
        source = store.whisper_ct2(self.model_name, settings.cache_dir)
        try:
            self.model = WhisperModel(source, device=device, compute_type=compute_type,
                                      cpu_threads=_cpu_count() if device == "cpu" else 0)
        except Exception as exc:  # hub errors, bad files and CUDA errors all come from different libraries
            raise AgentError(f"Whisper model '{self.model_name}' could not be loaded on {device} "
                             f"({type(exc).__name__}: {first_line(exc, 'no detail')}); "
                             "packaged models: 'base', 'tiny.en'; or set SUPPORT_AGENT_ASR_MODEL to a local "
                             "CTranslate2 directory") from None

    def _recognise(self, samples, language, words=True):
        segments, info = self.model.transcribe(
            samples, beam_size=self.beam_size, language=language, vad_filter=False, word_timestamps=words,
            condition_on_previous_text=False)  # stops one misheard phrase from repeating down the call
        out = [_Recognised(start=s.start, end=s.end, text=s.text.strip(), avg_logprob=s.avg_logprob,
                           no_speech_prob=s.no_speech_prob,
                           words=[(w.start, w.end, w.word, w.probability) for w in (s.words or [])])
               for s in segments]
        return out, info.language


class OpenAIWhisperEngine(WhisperEngine):
    """OpenAI's reference Whisper (PyTorch): float16 on CUDA, float32 on CPU.

    ``base`` and ``tiny.en`` are the packaged CTranslate2 weights, converted once into ``cache_dir``; other
    official names (``small``, ``medium``, ``large-v3``, ...) are downloaded by openai-whisper when online;
    a ``.pt`` checkpoint or a CTranslate2 directory can be given as a path.
    """

    name = "openai-whisper"

    def __init__(self, settings: Settings):
        super().__init__(settings)
        try:
            import torch
            import whisper
        except ImportError:
            raise AgentError("the openai-whisper engine needs the package 'openai-whisper': "
                             "pip install openai-whisper") from None
        from agent import whisper_weights

        device = settings.asr_device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        compute_type = settings.asr_compute_type
        if compute_type == "auto":
            compute_type = "float16" if device.startswith("cuda") else "float32"
        if compute_type not in ("float16", "float32"):
            raise AgentError(f"openai-whisper computes in float16 or float32, not '{compute_type}' "
                             "(set asr_compute_type to auto)")
        if compute_type == "float16" and not device.startswith("cuda"):
            raise AgentError("float16 needs a CUDA device for openai-whisper; on CPU it computes in float32")
        self.device, self.compute_type = device, compute_type
        checkpoint = store.whisper_checkpoint(self.model_name, settings.cache_dir)
        try:
            self.model = whisper.load_model(checkpoint, device=device)  # official names: ~/.cache/whisper
        except Exception as exc:  # download, file and CUDA errors all come from different libraries
            raise AgentError(f"Whisper model '{self.model_name}' could not be loaded by openai-whisper on {device} "
                             f"({type(exc).__name__}: {first_line(exc, 'no detail')}); packaged models: 'base', 'tiny.en'; "
                             "or an official Whisper name when online, a .pt checkpoint or a CTranslate2 "
                             "directory") from None
        if Path(checkpoint).is_file():
            heads = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True).get("alignment_heads")
            whisper_weights.set_alignment_heads(self.model, heads)

    def _recognise(self, samples, language, words=True):
        result = self.model.transcribe(
            samples, language=language, beam_size=self.beam_size if self.beam_size > 1 else None,
            best_of=5, fp16=self.compute_type == "float16", condition_on_previous_text=False,
            word_timestamps=words, verbose=None)
        out = [_Recognised(start=s["start"], end=s["end"], text=s["text"].strip(), avg_logprob=s["avg_logprob"],
                           no_speech_prob=s["no_speech_prob"],
                           words=[(w["start"], w["end"], w["word"], w["probability"]) for w in s.get("words", [])])
               for s in result["segments"]]
        return out, result.get("language") or language or "en"


def _auto(settings: Settings):
    """The faster engine for this machine: faster-whisper (CTranslate2) wherever it can run.

    A GPU that torch sees but CTranslate2 does not (its CUDA libraries missing) goes to openai-whisper
    in float16 rather than leaving the GPU idle and decoding on the CPU.
    """
    try:
        import ctranslate2
        import faster_whisper  # noqa: F401
    except ImportError:
        return OpenAIWhisperEngine(settings)
    if settings.asr_device in ("auto", "cuda") and ctranslate2.get_cuda_device_count() == 0 and _torch_has_cuda():
        return OpenAIWhisperEngine(settings)
    return FasterWhisperEngine(settings)


def _torch_has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


ENGINES = {FasterWhisperEngine.name: FasterWhisperEngine, OpenAIWhisperEngine.name: OpenAIWhisperEngine,
           "auto": _auto}


def load_engine(settings: Settings):
    return engine_class(ENGINES, settings.asr_engine, "ASR")(settings)
