"""Speech synthesis engines behind one interface: ``stream(text)`` yields audio per sentence."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from agent import store
from agent.settings import Settings
from agent.types import AgentError

from . import engine_class


class PiperEngine:
    """Piper (VITS exported to ONNX) with a packaged or local voice."""

    name = "piper"

    def __init__(self, settings: Settings, deterministic: bool = False):
        from piper import PiperVoice, SynthesisConfig

        voice = store.piper_voice(settings.tts_voice)
        try:
            self.voice = PiperVoice.load(voice)
        except Exception as exc:  # onnxruntime and json errors for a damaged voice file
            raise AgentError(f"Piper voice {voice} could not be loaded ({type(exc).__name__})") from None
        self.sample_rate = self.voice.config.sample_rate
        # VITS samples noise for natural prosody; without it the same text always gives the same audio,
        # which reproducible test sets (tests, benches) need.
        self.config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0) if deterministic else None

    def stream(self, text: str) -> Iterator[np.ndarray]:
        if not text or not text.strip():
            raise AgentError("nothing to say: the text is empty")
        for chunk in self.voice.synthesize(text, syn_config=self.config):
            yield chunk.audio_float_array

    def synthesize(self, text: str) -> np.ndarray:
        pieces = list(self.stream(text))
        audio = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
        if not len(audio) or float(np.abs(audio).max()) < 1e-4:
            raise AgentError("the voice produced no audible speech for this text")
        return audio


ENGINES = {PiperEngine.name: PiperEngine}


def load_engine(settings: Settings):
    return engine_class(ENGINES, settings.tts_engine, "TTS")(settings)
