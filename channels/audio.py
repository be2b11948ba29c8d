"""Audio in and out: decode any common format with PyAV (bundled FFmpeg, no ffmpeg binary)."""
from __future__ import annotations

import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from agent.types import AgentError, first_line

SAMPLE_RATE = 16000  # what Whisper expects


def decode(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 samples in [-1, 1] at ``sample_rate``; one-line AgentError on anything unusable."""
    audio = np.concatenate(list(stream(path, sample_rate, block_s=None)))
    return audio.astype(np.float32, copy=False)


def decode_channels(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Every channel kept apart: float32 array of shape (channels, samples) at ``sample_rate``."""
    return np.concatenate(list(stream(path, sample_rate, split_channels=True, block_s=None)), axis=1)


def stream(path: str | Path, sample_rate: int = SAMPLE_RATE, *, split_channels: bool = False,
           block_s: float | None = 30.0) -> Iterator[np.ndarray]:
    """Decode in blocks of ``block_s`` seconds (the last one shorter; None: one block for the whole file).

    Each block is float32 in [-1, 1] at ``sample_rate``: mono, shape (n,), or with ``split_channels``
    one row per channel, shape (channels, n). Memory stays at about one block however long the file is.
    Problems are one-line AgentErrors: a missing, empty or unreadable file, no audio stream, a codec
    FFmpeg cannot decode, corrupt data part-way (raised when reached), or no samples at all.
    """
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
        source = container.streams.audio[0]
        if source.codec_context is None:
            raise AgentError(f"{path}: unsupported audio codec (FFmpeg has no decoder for this file's audio; "
                             f"convert it to wav, flac, mp3, ogg/opus or m4a)")
        channels = max(source.codec_context.channels, 1) if split_channels else 1
        layout = source.codec_context.layout.name if split_channels and channels > 1 else "mono"
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=sample_rate)
        block = None if block_s is None else max(int(block_s * sample_rate), 1)
        pending: list[np.ndarray] = []
        held = total = 0
        try:
            frames = container.decode(source)
            while True:
                frame = next(frames, None)
                for f in resampler.resample(frame):
                    piece = f.to_ndarray().reshape(channels, -1)
                    if not np.isfinite(piece).all():
                        raise AgentError(f"{path}: corrupt audio (samples are not finite numbers)")
                    pending.append(piece)
                    held += piece.shape[1]
                    while block is not None and held >= block:
                        out, pending, held = _split(pending, block)
                        total += out.shape[1]
                        yield out if split_channels else out[0]
                if frame is None:
                    break
        except av.FFmpegError as exc:
            raise AgentError(f"{path}: corrupt audio ({_reason(exc)})") from None
    if held:
        out = np.concatenate(pending, axis=1)
        total += out.shape[1]
        yield out if split_channels else out[0]
    if total == 0:
        raise AgentError(f"{path}: the file holds no audio samples")


def probe(path: str | Path) -> tuple[float | None, int]:
    """``(duration in seconds or None when the container does not say, channels)`` without decoding.

    Never raises: a file that cannot be opened gives ``(None, 1)`` (decoding it then gives the error).
    """
    import av

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                return None, 1
            s = container.streams.audio[0]
            channels = s.codec_context.channels if s.codec_context is not None else 1
            if s.duration is not None and s.time_base:
                return float(s.duration * s.time_base), channels
            if container.duration is not None:
                return container.duration / av.time_base, channels
            return None, channels
    except Exception:  # anything unreadable is reported by decode/stream, with its reason
        return None, 1


def _split(pieces: list[np.ndarray], n: int) -> tuple[np.ndarray, list[np.ndarray], int]:
    """The first ``n`` samples of ``pieces`` as one array, and what is left."""
    joined = np.concatenate(pieces, axis=1)
    rest = joined[:, n:]
    return joined[:, :n], ([rest.copy()] if rest.shape[1] else []), rest.shape[1]


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or first_line(exc)


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
