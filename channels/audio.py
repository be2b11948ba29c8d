"""Audio in and out: decode any common format with PyAV (bundled FFmpeg, no ffmpeg binary)."""
from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from agent.types import AgentError

SAMPLE_RATE = 16000  # what Whisper expects


def decode(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 samples in [-1, 1] at ``sample_rate``; one-line AgentError on anything unusable."""
    import av

    path = Path(path)
    if not path.is_file():
        raise AgentError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AgentError(f"{path}: empty file")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise AgentError(f"{path}: not a readable audio file ({_reason(exc)})") from None
    with container:
        if not container.streams.audio:
            raise AgentError(f"{path}: no audio stream in this file")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        pieces: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                pieces.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
            pieces.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
        except av.FFmpegError as exc:
            raise AgentError(f"{path}: corrupt audio ({_reason(exc)})") from None
    if not pieces or sum(len(p) for p in pieces) == 0:
        raise AgentError(f"{path}: the file holds no audio samples")
    audio = np.concatenate(pieces).astype(np.float32, copy=False)
    if not np.isfinite(audio).all():
        raise AgentError(f"{path}: corrupt audio (samples are not finite numbers)")
    return audio


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc).splitlines()[0]


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write mono float samples as 16-bit PCM WAV."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return path


def encode(path: str | Path, audio: np.ndarray, sample_rate: int, codec: str | None = None) -> Path:
    """Write mono float samples in the container given by the suffix (.flac, .mp3, .ogg, .wav, ...)."""
    import av

    path = Path(path)
    codec = codec or {".flac": "flac", ".mp3": "libmp3lame", ".ogg": "libopus", ".opus": "libopus",
                      ".m4a": "aac", ".wav": "pcm_s16le"}.get(path.suffix.lower())
    if codec is None:
        raise AgentError(f"{path}: unknown audio format '{path.suffix}'")
    rate = 48000 if codec == "libopus" else sample_rate  # Opus only runs at 8/12/16/24/48 kHz
    if rate != sample_rate:
        audio = resample(audio, sample_rate, rate)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(audio.astype(np.float32).reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = rate
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=rate)
        for f in resampler.resample(frame) + resampler.resample(None):
            out.mux(stream.encode(f))
        out.mux(stream.encode(None))
    return path


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited resampling through FFmpeg's swresample."""
    import av

    if rate_in == rate_out:
        return audio
    frame = av.AudioFrame.from_ndarray(audio.astype(np.float32).reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = rate_in
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate_out)
    out = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame) + resampler.resample(None)]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)
