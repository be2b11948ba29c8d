"""The Coqui TTS engine's former module name; the engine is ``channels/tts_coqui.py``."""
from .tts_coqui import CoquiEngine, coqui_checkpoint, coqui_voice  # noqa: F401
