"""Speech recognition behind one interface: each engine returns a ``Transcript`` (``channels.transcript``).

Each engine is an adapter in a module of its own, ``channels/asr_<name>.py`` (the engine's name with
``-`` written ``_``), whose ``Engine`` is a ``WhisperEngine`` that loads a model and implements
``_recognise``; adding an engine is adding that one file (``engines()`` finds it). Two run the same
Whisper weights:

* ``faster-whisper`` (``asr_faster_whisper.py``): CTranslate2, int8 on CPU and float16 on CUDA
  (``asr_compute_type``). The faster one on every machine we measured, so ``asr_engine = "auto"`` picks it
  whenever it is installed.
* ``openai-whisper`` (``asr_openai_whisper.py``): OpenAI's PyTorch reference implementation, float32 on
  CPU and float16 on CUDA. The packaged weights ship in CTranslate2's format; they are converted once into
  a checkpoint that ``whisper.load_model`` accepts (``agent/whisper_weights.py``) and cached in ``cache_dir``.

Both share one front end, here, so that they see the same audio and return the same ``Transcript``:

* Voice-activity detection keeps only speech (``channels.speech_detection``): Silero VAD (the model
  faster-whisper bundles), plus loud stretches it missed (it scores noisy 8 kHz telephone speech as
  non-speech), which Whisper must then recognise with confidence. A recording with no speech returns an empty text and ``no_speech = True``,
  usually without the decoder ever running, so Whisper gets no chance to invent text on silence;
  segments Whisper itself rates as non-speech with low confidence, and its stock subtitle phrases, are
  dropped as well (tones, music and noise that got past VAD; see ``transcript.invented``).
* Long recordings are decoded and recognised in windows of at most ``WINDOW_S`` seconds per channel,
  cut in a pause, so memory stays flat however long the recording is (an hour of 16 kHz float32 would
  be 230 MB of samples alone, and several times that in features).
* Segment times bound the speech: Whisper aligns every word (its alignment heads), a segment starts at
  its first word and ends at its last, and one that runs over a pause of ``PAUSE_S`` or more (a pause
  VAD took out of the audio Whisper heard) is cut there. Segments carry their words (``Word``); see
  ``channels.transcript``.
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

import importlib
import os
import pkgutil
import time
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from agent.settings import Settings
from agent.types import AgentError

from . import audio as audio_io
from . import diarization, engine_class
from .audio import SAMPLE_RATE
from .speech_detection import Speech, vad_chunks
from .transcript import Recognised, Segment, Transcript, Word, clip_owner, joined, snap, timed

__all__ = ["BLOCK_S", "DEFAULT_SPEAKERS", "PACK_MAX_CLIP_S", "Segment", "Transcript", "WhisperEngine", "Word",
           "engines", "load_engine"]

DEFAULT_SPEAKERS = ("customer", "agent")  # channel 0 (left), channel 1 (right) of a two-party recording
WINDOW_S = 300.0  # audio held per channel at once; a window is cut in a pause
BLOCK_S = 30.0  # decoding block
PACK_WINDOW_S = 28.0  # packed clips fill a Whisper window up to this (it holds 30 s)
PACK_GAP_S = 1.0  # silence between packed clips
PACK_MAX_CLIP_S = 10.0  # clips with more speech than this are recognised on their own
SAME_CHANNELS = 0.01  # stereo whose channel difference has < 1% of the energy is one signal, not two parties


def cuda_available() -> bool:
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count() > 0
    except Exception:  # a broken CUDA install means: no usable GPU
        return False


def cpu_count() -> int:
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


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
                   words: bool = True) -> tuple[list[Recognised], str]:
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
        chunks = vad_chunks(buf)
        cut = buf.size
        if not final and len(chunks) > 1 and chunks[-1]["start"] >= buf.size // 2:
            cut = chunks[-1]["start"]  # the last speech run may go on in the next block: keep it
            chunks = chunks[:-1]
        segments: list[Segment] = []
        if chunks:
            speech = Speech(buf, chunks)
            recognised, language = self._recognise(speech.audio, language)
            for r in recognised:
                segments += timed(r, speech, 0.0, offset / SAMPLE_RATE)
            snap(segments, buf[:cut], offset / SAMPLE_RATE)
        return cut, segments, language

    def _transcript(self, segments: list[Segment], language: str | None, duration: float, seconds: float,
                    mono: np.ndarray | None = None, speakers: Sequence[str] = DEFAULT_SPEAKERS) -> Transcript:
        """The transcript of time-ordered ``segments``; ``mono``, the audio of a mono recording, is diarized."""
        if mono is not None and segments and self.diarization.speakers > 1:
            segments = diarization.label(mono, segments, self.diarizer, self.diarization, speakers)
        segments = joined(segments, BLOCK_S)
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
        packable: list[tuple[int, Speech]] = []
        for i, clip in enumerate(clips):
            clip = np.asarray(clip, dtype=np.float32)
            speech = Speech(clip, vad_chunks(clip))
            duration = clip.size / SAMPLE_RATE
            if not speech.chunks:
                results[i] = self._transcript([], None, duration, 0.0)
            elif speech.audio.size > PACK_MAX_CLIP_S * SAMPLE_RATE:
                results[i] = self.transcribe(clip, speakers)
            else:
                packable.append((i, speech))
        gap = np.zeros(int(PACK_GAP_S * SAMPLE_RATE), np.float32)
        limit = int(PACK_WINDOW_S * SAMPLE_RATE)
        pack: list[tuple[int, Speech]] = []
        packs: list[list[tuple[int, Speech]]] = []
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

    def _recognise_pack(self, pack: list[tuple[int, Speech]], gap: np.ndarray, clips, results, speakers) -> None:
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
                k = clip_owner((w[0] + w[1]) / 2, spans, gap.size / SAMPLE_RATE)
                owned.setdefault(k, []).append(w)
            for k, ws in owned.items():
                mine = Recognised(ws[0][0], ws[-1][1], "".join(w[2] for w in ws).strip(), r.avg_logprob,
                                  r.no_speech_prob, ws)
                per_clip[k] += timed(mine, pack[k][1], spans[k][0], 0.0)
        for k, (i, _) in enumerate(pack):
            if per_clip[k]:
                results[i] = self._transcript(per_clip[k], language, clips[i].size / SAMPLE_RATE, 0.0,
                                              np.asarray(clips[i], np.float32), speakers)
            else:  # speech Whisper skipped inside the pack: give the clip its own window
                results[i] = self.transcribe(clips[i], speakers)


def _auto(settings: Settings):
    """The faster engine for this machine: faster-whisper (CTranslate2) wherever it can run.

    A GPU that torch sees but CTranslate2 does not (its CUDA libraries missing) goes to openai-whisper
    in float16 rather than leaving the GPU idle and decoding on the CPU.
    """
    try:
        import ctranslate2
        import faster_whisper  # noqa: F401
    except ImportError:
        return engines()["openai-whisper"](settings)
    if settings.asr_device in ("auto", "cuda") and ctranslate2.get_cuda_device_count() == 0 and _torch_has_cuda():
        return engines()["openai-whisper"](settings)
    return engines()["faster-whisper"](settings)


def _torch_has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def engines() -> dict:
    """Every engine by name: the ``Engine`` of each ``channels/asr_<name>.py``, and ``auto``."""
    found = {}
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if module.name.startswith("asr_"):
            engine = importlib.import_module(f"{__package__}.{module.name}").Engine
            found[engine.name] = engine
    return {**dict(sorted(found.items())), "auto": _auto}


def load_engine(settings: Settings):
    return engine_class(engines(), settings.asr_engine, "ASR")(settings)


def __getattr__(name: str):
    """The engines under the names they had when they lived here (``asr.FasterWhisperEngine``, ``asr.ENGINES``)."""
    if name == "ENGINES":
        return engines()
    if name in ("FasterWhisperEngine", "OpenAIWhisperEngine"):
        return getattr(importlib.import_module(f"{__package__}.asr_{_MODULES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_MODULES = {"FasterWhisperEngine": "faster_whisper", "OpenAIWhisperEngine": "openai_whisper"}
_vad_chunks = vad_chunks  # the name tests and benches use
