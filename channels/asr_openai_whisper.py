"""The openai-whisper engine: OpenAI's reference Whisper (PyTorch), float16 on CUDA and float32 on CPU."""
from __future__ import annotations

from pathlib import Path

from agent import store
from agent.settings import Settings
from agent.types import AgentError, first_line

from .asr import WhisperEngine
from .transcript import Recognised


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
        out = [Recognised(start=s["start"], end=s["end"], text=s["text"].strip(), avg_logprob=s["avg_logprob"],
                          no_speech_prob=s["no_speech_prob"],
                          words=[(w["start"], w["end"], w["word"], w["probability"]) for w in s.get("words", [])])
               for s in result["segments"]]
        return out, result.get("language") or language or "en"

# The adapter ``channels.asr.engines()`` finds.
Engine = OpenAIWhisperEngine
