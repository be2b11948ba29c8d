"""Speech synthesis engines behind one interface, and the audio files they make.

Every engine speaks text prepared by ``speech_text`` (amounts, dates, references and abbreviations in
words), one sentence at a time: ``stream(text)`` yields each sentence's audio as soon as it is made, so
playback can start before a long reply is done; ``synthesize(text)`` is the whole reply. ``export``
writes it as WAV at the voice's rate or for the telephone, loudness-normalised.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent import store
from agent.settings import Settings
from agent.types import AgentError

from . import adapter, adapter_name, audio, speech_text

TELEPHONE_RATE = 8000


@dataclass(frozen=True)
class Loudness:
    """Integrated loudness (ITU-R BS.1770 / EBU R128 gating) to reach, and a true-peak ceiling."""

    lufs: float
    ceiling_dbtp: float


# Spoken word for listening on its own is mastered at -16 LUFS in stereo (AES TD1004, podcast platforms);
# a mono file plays from both speakers, 3 dB louder, so the mono equivalent is -19 LUFS. -1 dBTP leaves
# room for the overshoot of lossy re-encoding.
WIDEBAND = Loudness(lufs=-19.0, ceiling_dbtp=-1.0)
# Telephone networks plan for speech at -26 dBov (ITU-T P.56 active level), a few dB either way; -22 LUFS
# is the loud end of that, clear over line noise without sounding hot beside the caller. The ceiling is
# lower because mu-law quantisation and mobile codecs (AMR, Opus) downstream overshoot further.
TELEPHONE = Loudness(lufs=-22.0, ceiling_dbtp=-3.0)


@dataclass(frozen=True)
class Format:
    rate: int | None  # None: the voice's own rate
    codec: str  # an FFmpeg PCM codec, written in a WAV container
    loudness: Loudness


FORMATS = {
    "wav": Format(None, "pcm_s16le", WIDEBAND),
    "telephone": Format(TELEPHONE_RATE, "pcm_mulaw", TELEPHONE),  # G.711 mu-law, as phone systems play it
    "telephone-pcm": Format(TELEPHONE_RATE, "pcm_s16le", TELEPHONE),  # 8 kHz linear, for systems that encode
}


class Speaker:
    """What every engine shares: text preparation, sentence-by-sentence streaming, checks."""

    name: str
    sample_rate: int
    text_options = speech_text.SpeechTextOptions()
    # Engines end a sentence without the pause a speaker leaves before the next one.
    pause_s = 0.2

    def _speak(self, sentence: str) -> np.ndarray:
        """Float32 samples in [-1, 1] at ``sample_rate`` for one prepared sentence."""
        raise NotImplementedError

    def stream(self, text: str) -> Iterator[np.ndarray]:
        """The reply's audio, one chunk per sentence (the pause after it included), as each is made."""
        if not text or not text.strip():
            raise AgentError("nothing to say: the text is empty")
        parts = speech_text.sentences(text, self.text_options)
        pause = np.zeros(int(self.pause_s * self.sample_rate), dtype=np.float32)
        for i, sentence in enumerate(parts, 1):
            chunk = self._speak(sentence)
            if not len(chunk) or float(np.abs(chunk).max()) < 1e-4:
                # Silence would be passed off as a spoken reply; the sentence itself stays out of the message.
                raise AgentError(f"the voice produced no audible speech for sentence {i} of {len(parts)}")
            yield np.concatenate([chunk, pause]) if i < len(parts) else chunk

    def synthesize(self, text: str) -> np.ndarray:
        return np.concatenate(list(self.stream(text)))


class PiperEngine(Speaker):
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

    def _speak(self, sentence: str) -> np.ndarray:
        # espeak may still cut a sentence at its own clause marks: one chunk each, joined.
        pieces = [c.audio_float_array for c in self.voice.synthesize(sentence, syn_config=self.config)]
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)


ENGINE_PREFIX = "tts_"  # other engines are channels/tts_<name>.py (Coqui: tts_coqui.py)


def load_engine(settings: Settings, deterministic: bool = False) -> Speaker:
    """Piper (built in) or the ``Engine`` of ``channels/tts_<name>.py``, whose module is imported only now."""
    name = adapter_name(ENGINE_PREFIX, settings.tts_engine, "TTS", PiperEngine.name, built_in=(PiperEngine.name,))
    engine = PiperEngine if name == PiperEngine.name else adapter(ENGINE_PREFIX, name)
    return engine(settings, deterministic=deterministic)


def _oversampled_peaks(samples: np.ndarray, rate: int) -> np.ndarray:
    """Per sample, the largest magnitude of the signal oversampled to at least 192 kHz (BS.1770-4, Annex 2):
    the inter-sample peaks a DAC or a resampler reconstructs."""
    from scipy.signal import resample_poly

    factor = max(4, -(-192000 // rate))
    upsampled = np.abs(resample_poly(samples.astype(np.float64), factor, 1))
    return upsampled[:len(samples) * factor].reshape(len(samples), factor).max(axis=1)


def true_peak_db(samples: np.ndarray, rate: int) -> float:
    peak = float(_oversampled_peaks(samples, rate).max(initial=0.0))
    return 20 * np.log10(peak) if peak > 0 else float("-inf")


def loudness_lufs(samples: np.ndarray, rate: int) -> float:
    """Integrated, gated loudness (ITU-R BS.1770-4, K-weighted) of mono samples."""
    import pyloudnorm

    block = int(0.4 * rate)  # BS.1770 measures 400 ms blocks: a shorter clip is measured padded with silence
    padded = np.pad(samples.astype(np.float64), (0, max(0, block - len(samples))))
    return float(pyloudnorm.Meter(rate).integrated_loudness(padded))


def limit(samples: np.ndarray, rate: int, ceiling_dbtp: float, window_s: float = 0.02) -> np.ndarray:
    """Hold true peaks at the ceiling with a smooth gain (a look-ahead limiter).

    The gain each sample needs is taken as the minimum over a window around it, then averaged over the same
    window: every average then covers only values at or below the sample's own need (no overshoot), and the
    gain ramps over ``window_s`` instead of jumping (no clicks or distortion).
    """
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    need = np.minimum(1.0, 10 ** (ceiling_dbtp / 20) / np.maximum(_oversampled_peaks(samples, rate), 1e-9))
    width = max(1, int(window_s * rate)) | 1  # odd, so both filters are centred on the same sample
    gain = uniform_filter1d(minimum_filter1d(need, width, mode="nearest"), width, mode="nearest")
    return (samples * np.minimum(gain, need)).astype(np.float32)


def normalise_loudness(samples: np.ndarray, rate: int, target: Loudness) -> np.ndarray:
    """``samples`` at ``target.lufs`` with true peaks at or under ``target.ceiling_dbtp``.

    Piper peak-normalises every sentence, so its speech has a crest factor near 20 dB: reaching -19 LUFS
    takes a few dB of peak limiting. Limiting lowers the loudness a little, so the gain is set twice.
    """
    out = samples.astype(np.float32)
    for _ in range(2):
        loudness = loudness_lufs(out, rate)
        if not np.isfinite(loudness):
            raise AgentError("the voice produced no audible speech")
        out = limit(out * np.float32(10 ** ((target.lufs - loudness) / 20)), rate, target.ceiling_dbtp)
    return out


def without_dc(samples: np.ndarray, rate: int, cutoff_hz: float = 40.0) -> np.ndarray:
    """``samples`` through a gentle high-pass below the voice's range: a DC offset (which some voices have)
    is inaudible but takes headroom, so the limiter would hold the speech down to keep it under the ceiling."""
    from scipy.signal import butter, sosfiltfilt

    return sosfiltfilt(butter(2, cutoff_hz, "highpass", fs=rate, output="sos"), samples).astype(np.float32)


def export(path: str | Path, samples: np.ndarray, sample_rate: int, fmt: str = "wav") -> tuple[Path, int]:
    """Write ``samples`` in format ``fmt`` (see FORMATS), loudness-normalised; returns (path, rate)."""
    try:
        spec = FORMATS[fmt]
    except KeyError:
        raise AgentError(f"unknown audio format '{fmt}' (available: {', '.join(FORMATS)})") from None
    rate = spec.rate or sample_rate
    samples = normalise_loudness(audio.resample(without_dc(samples, sample_rate), sample_rate, rate), rate,
                                 spec.loudness)
    if spec.codec == "pcm_s16le":
        return audio.write_wav(path, samples, rate), rate
    return audio.encode(path, samples, rate, codec=spec.codec), rate
