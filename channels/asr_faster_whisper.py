"""The faster-whisper engine: Whisper through CTranslate2, int8 on CPU and float16 on CUDA (``asr_compute_type``)."""
from __future__ import annotations

from agent import store
from agent.settings import Settings
from agent.types import AgentError, first_line

from .asr import WhisperEngine, cpu_count, cuda_available
from .transcript import Recognised


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
                                      cpu_threads=cpu_count() if device == "cpu" else 0)
        except Exception as exc:  # hub errors, bad files and CUDA errors all come from different libraries
            raise AgentError(f"Whisper model '{self.model_name}' could not be loaded on {device} "
                             f"({type(exc).__name__}: {first_line(exc, 'no detail')}); "
                             "packaged models: 'base', 'tiny.en'; or set SUPPORT_AGENT_ASR_MODEL to a local "
                             "CTranslate2 directory") from None

    def _recognise(self, samples, language, words=True):
        segments, info = self.model.transcribe(
            samples, beam_size=self.beam_size, language=language, vad_filter=False, word_timestamps=words,
            condition_on_previous_text=False)  # stops one misheard phrase from repeating down the call
        out = [Recognised(start=s.start, end=s.end, text=s.text.strip(), avg_logprob=s.avg_logprob,
                          no_speech_prob=s.no_speech_prob,
                          words=[(w.start, w.end, w.word, w.probability) for w in (s.words or [])])
               for s in segments]
        return out, info.language

# The adapter ``channels.asr.engines()`` finds.
Engine = FasterWhisperEngine
