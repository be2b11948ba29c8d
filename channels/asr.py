"""Speech recognition engines behind one interface. Each returns a ``Transcript``."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from agent import store
from agent.settings import Settings
from agent.types import AgentError

from . import engine_class
from .audio import SAMPLE_RATE


@dataclass
class Segment:
    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    speaker: str | None = None


@dataclass
class Transcript:
    text: str
    language: str
    duration_s: float
    segments: list[Segment] = field(default_factory=list)
    engine: str = ""
    model: str = ""
    seconds: float = 0.0  # wall-clock time spent transcribing

    def to_dict(self) -> dict:
        return asdict(self)


def cuda_available() -> bool:
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count() > 0
    except Exception:  # a broken CUDA install means: no usable GPU
        return False


class FasterWhisperEngine:
    """Whisper through CTranslate2: int8 on CPU, float16 on CUDA."""

    name = "faster-whisper"

    def __init__(self, settings: Settings):
        from faster_whisper import WhisperModel

        self.model_name = settings.asr_model
        device = settings.asr_device
        if device == "auto":
            device = "cuda" if cuda_available() else "cpu"
        compute_type = settings.asr_compute_type
        if compute_type == "auto":
            compute_type = "float16" if device == "cuda" else "int8"
        self.beam_size = settings.asr_beam_size
        self.language = settings.language or None
        source = store.whisper_ct2(self.model_name, settings.cache_dir)
        try:
            self.model = WhisperModel(source, device=device, compute_type=compute_type)
        except Exception as exc:  # hub errors, bad files and CUDA errors all come from different libraries
            raise AgentError(f"Whisper model '{self.model_name}' could not be loaded on {device} "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}); "
                             "packaged models: 'base', 'tiny.en'; or set SUPPORT_AGENT_ASR_MODEL to a local "
                             "CTranslate2 directory") from None

    def transcribe(self, audio: np.ndarray) -> Transcript:
        started = time.perf_counter()
        segments, info = self.model.transcribe(
            audio, beam_size=self.beam_size, language=self.language, vad_filter=True,
            condition_on_previous_text=False)  # stops one misheard phrase from repeating down the call
        segs = [Segment(start=round(s.start, 2), end=round(s.end, 2), text=s.text.strip(),
                        avg_logprob=round(s.avg_logprob, 3), no_speech_prob=round(s.no_speech_prob, 3))
                for s in segments]
        return Transcript(text=" ".join(s.text for s in segs if s.text), language=info.language,
                          duration_s=round(len(audio) / SAMPLE_RATE, 2), segments=segs, engine=self.name,
                          model=self.model_name, seconds=round(time.perf_counter() - started, 3))


ENGINES = {FasterWhisperEngine.name: FasterWhisperEngine}


def load_engine(settings: Settings):
    return engine_class(ENGINES, settings.asr_engine, "ASR")(settings)
