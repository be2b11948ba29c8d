"""The default diarization engine: Resemblyzer's GE2E speaker encoder, offline.

The ``resemblyzer`` package (Apache-2.0) ships its trained encoder (``pretrained.pt``, 17 MB: a three-layer
LSTM over 40-band mel spectrograms, 256-dimensional voice embeddings; Wan et al., "Generalized End-to-End
Loss for Speaker Verification", 2018) inside its wheel. Its weights are loaded from there and run here,
without importing the package, whose audio module needs ``webrtcvad`` and with it setuptools'
``pkg_resources`` at import time, for a voice-activity detector we do not use.

Every stretch of speech is embedded in windows of 1.6 s (what the encoder was trained on) every 0.8 s;
shorter stretches in one window of their own length. The windows are clustered (average-linkage on
cosine distance, then refined as spherical k-means), and each 10 ms of speech goes to the speaker its
covering windows resemble most. Two clusters as alike as one voice's windows are one speaker.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_sequence

from agent.settings import Settings
from agent.types import AgentError

from .audio import SAMPLE_RATE
from .diarization import Diarizer, SpeakerTurn

FRAMES_S = 100  # mel frames a second (10 ms hop, 25 ms window, as the encoder was trained)
WINDOW, HOP = 160, 80  # frames: 1.6 s windows every 0.8 s (Resemblyzer's own rate is a window every 0.77 s)
SHORTEST = 80  # frames: windows shorter than this are labelled by the clusters, not used to form them
# One voice or several: two cluster centres more alike than SAME_VOICE are one voice, and so are clusters
# that bring the windows less than SPLIT_GAIN closer to their centre than one centre does. Measured (cosine)
# on the test calls: one voice split in two 0.80-0.90 alike, gain 0.006-0.028; two voices 0.48-0.61 alike,
# gain 0.08-0.13 (0.72-0.80 and 0.02-0.06 on telephone audio).
SAME_VOICE, SPLIT_GAIN = 0.85, 0.02
FEWEST_WINDOWS = 2  # a voice is told apart from 2.4 s of speech on; a cluster of one window is noise (a
# 12 s telephone recording of one voice split 7 windows against 1, with a gain of 0.024)
SHORTEST_RUN = 30  # frames: a speaker's run shorter than this inside one stretch of speech is its neighbour's
ATTACH_GAP_S = 0.5  # a stretch too short to embed well joins a neighbour closer than this (see _attach_short)
TARGET_DBFS = -30.0  # the encoder's training level; quieter audio is raised to it


class ResemblyzerDiarizer(Diarizer):
    name = "resemblyzer"

    def __init__(self, settings: Settings):
        weights = _weights()
        self.encoder = Encoder()
        state = torch.load(weights, map_location="cpu", weights_only=True)["model_state"]
        self.encoder.load_state_dict({k: v for k, v in state.items() if not k.startswith("similarity")})
        self.encoder.eval()

    def turns(self, samples, speech, speakers):
        speech = _attach_short(speech)
        samples = _level(samples, speech)
        mel = _mel(samples)
        windows = [w for a, b in speech for w in _windows(int(a * FRAMES_S), min(int(np.ceil(b * FRAMES_S)),
                                                                                  len(mel)))]
        if not windows:
            return []
        vectors = self.embed([mel[a:b] for a, b in windows])
        centres = _clusters(vectors, np.array([b - a for a, b in windows]), speakers)
        return _runs(windows, vectors @ centres.T, speech)

    def embed(self, mels: list[np.ndarray]) -> np.ndarray:
        """One unit-length voice embedding per mel spectrogram (frames, 40), any lengths, in one batch."""
        with torch.inference_mode():
            packed = pack_sequence([torch.from_numpy(m) for m in mels], enforce_sorted=False)
            return self.encoder(packed).numpy()


def _weights() -> Path:
    spec = importlib.util.find_spec("resemblyzer")
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt" if spec else None
    if path is None or not path.is_file():
        raise AgentError("the resemblyzer diarization engine needs the package 'resemblyzer' (its wheel ships "
                         "the speaker encoder): pip install resemblyzer")
    return path


class Encoder(nn.Module):
    """Resemblyzer's VoiceEncoder network: LSTM(40, 256, 3 layers), linear, ReLU, unit length."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(40, 256, 3, batch_first=True)
        self.linear = nn.Linear(256, 256)
        self.relu = nn.ReLU()

    def forward(self, mels):
        _, (hidden, _) = self.lstm(mels)
        raw = self.relu(self.linear(hidden[-1]))
        return raw / raw.norm(dim=1, keepdim=True).clamp_min(1e-9)


def _attach_short(speech: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Stretches of speech shorter than a usable window joined to the nearer neighbour, where it is closer
    than ``ATTACH_GAP_S``: a turn's first word ("Hi, ...", "Yes, ...") is often set apart by a short
    breath, and alone it is too short to say whose voice it is."""
    spans = [list(s) for s in speech]
    i = 0
    while i < len(spans):
        a, b = spans[i]
        before = a - spans[i - 1][1] if i else np.inf
        after = spans[i + 1][0] - b if i + 1 < len(spans) else np.inf
        if (b - a) * FRAMES_S < SHORTEST and min(before, after) < ATTACH_GAP_S:
            j = i - 1 if before <= after else i + 1
            spans[min(i, j)] = [spans[min(i, j)][0], spans[max(i, j)][1]]
            del spans[max(i, j)]
            i = min(i, j)
        else:
            i += 1
    return [(a, b) for a, b in spans]


def _level(samples: np.ndarray, speech) -> np.ndarray:
    """Raise quiet speech to the encoder's training level (never lowered, as Resemblyzer does)."""
    voiced = np.concatenate([samples[int(a * SAMPLE_RATE):int(b * SAMPLE_RATE)] for a, b in speech] or [samples])
    rms = float(np.sqrt(np.mean(voiced.astype(np.float64) ** 2))) if voiced.size else 0.0
    if rms <= 0:
        return samples
    gain = 10 ** ((TARGET_DBFS - 20 * np.log10(rms)) / 20)
    return samples * gain if gain > 1 else samples


N_FFT, MEL_HOP, N_MELS = 400, 160, 40


def _mel(samples: np.ndarray) -> np.ndarray:
    """Mel power spectrogram (frames, 40) as Resemblyzer computes it with librosa (centred frames, zero
    padding, Hann window, Slaney mel bands; not logarithmic), here in numpy: importing librosa took longer
    than the whole diarization of a minute's call."""
    padded = np.pad(samples.astype(np.float32), N_FFT // 2)
    n = 1 + (padded.size - N_FFT) // MEL_HOP
    frames = np.lib.stride_tricks.as_strided(padded, (n, N_FFT), (padded.strides[0] * MEL_HOP, padded.strides[0]))
    power = np.abs(np.fft.rfft(frames * np.hanning(N_FFT + 1)[:-1].astype(np.float32), axis=1)) ** 2
    return (power @ _mel_bands().T).astype(np.float32)


def _mel_bands() -> np.ndarray:
    """librosa.filters.mel(sr=16000, n_fft=400, n_mels=40): triangles on the Slaney mel scale, area-normalised."""
    def to_mel(hz):
        hz = np.asarray(hz, float)
        return np.where(hz < 1000, hz * 3 / 200, 15 + np.log(np.maximum(hz, 1e-9) / 1000) / (np.log(6.4) / 27))

    def to_hz(mel):
        return np.where(mel < 15, mel * 200 / 3, 1000 * np.exp((mel - 15) * np.log(6.4) / 27))

    edges = to_hz(np.linspace(to_mel(0), to_mel(SAMPLE_RATE / 2), N_MELS + 2))
    ramps = edges[:, None] - np.fft.rfftfreq(N_FFT, 1 / SAMPLE_RATE)[None, :]
    widths = np.diff(edges)
    bands = np.maximum(0, np.minimum(-ramps[:-2] / widths[:-1, None], ramps[2:] / widths[1:, None]))
    return bands * (2 / (edges[2:] - edges[:-2]))[:, None]


def _windows(a: int, b: int) -> list[tuple[int, int]]:
    """Windows of ``WINDOW`` frames every ``HOP`` over frames a..b, the last ending at b; one if shorter."""
    if b - a <= WINDOW:
        return [(a, b)] if b - a >= 5 else []
    starts = list(range(a, b - WINDOW, HOP)) + [b - WINDOW]
    return [(s, s + WINDOW) for s in starts]


def _clusters(vectors: np.ndarray, lengths: np.ndarray, speakers: int) -> np.ndarray:
    """Unit-length cluster centres: at most ``speakers``, fewer where clusters are one voice."""
    from sklearn.cluster import AgglomerativeClustering

    usable = vectors[lengths >= SHORTEST] if (lengths >= SHORTEST).sum() >= speakers else vectors
    k = min(speakers, len(usable))
    if k < 2:
        return _unit(usable.mean(axis=0, keepdims=True))  # one window of speech: one voice
    labels = AgglomerativeClustering(n_clusters=k, metric="cosine", linkage="average").fit_predict(usable)
    centres = _unit(np.stack([usable[labels == c].mean(axis=0) for c in range(k)]))
    for _ in range(10):  # spherical k-means from the agglomerative start
        labels = (usable @ centres.T).argmax(axis=1)
        centres = _unit(np.stack([usable[labels == c].mean(axis=0) if (labels == c).any() else centres[c]
                                  for c in range(k)]))
    centres = centres[np.bincount(labels, minlength=k) >= FEWEST_WINDOWS]
    one = _unit(usable.mean(axis=0, keepdims=True))
    if len(centres) < 2 or (usable @ centres.T).max(axis=1).mean() - (usable @ one.T).mean() < SPLIT_GAIN:
        return one
    return _merge_alike(centres)


def _merge_alike(centres: np.ndarray) -> np.ndarray:
    """Join the two closest centres while they are as alike as one voice."""
    while len(centres) > 1:
        similar = centres @ centres.T - 2 * np.eye(len(centres))
        i, j = np.unravel_index(similar.argmax(), similar.shape)
        if similar[i, j] < SAME_VOICE:
            break
        centres = np.vstack([np.delete(centres, [i, j], axis=0), _unit(centres[[i, j]].mean(axis=0, keepdims=True))])
    return centres


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)


def _runs(windows, similarity: np.ndarray, speech) -> list[SpeakerTurn]:
    """Each 10 ms of speech to the speaker its covering windows resemble most; runs of one speaker."""
    turns: list[SpeakerTurn] = []
    for a, b in speech:
        fa, fb = int(a * FRAMES_S), int(np.ceil(b * FRAMES_S))
        if fb <= fa:
            continue
        score = np.zeros((fb - fa, similarity.shape[1]))
        for (wa, wb), s in zip(windows, similarity):
            lo, hi = max(wa, fa), min(wb, fb)
            if hi > lo:
                score[lo - fa:hi - fa] += s
        who = _smoothed(score.argmax(axis=1))
        edges = np.flatnonzero(np.diff(who)) + 1
        for s, e in zip(np.r_[0, edges], np.r_[edges, len(who)]):
            turns.append(SpeakerTurn(round((fa + s) / FRAMES_S, 2), round((fa + e) / FRAMES_S, 2), int(who[s])))
    return turns


def _smoothed(who: np.ndarray) -> np.ndarray:
    """Runs shorter than ``SHORTEST_RUN`` frames take the speaker before them (or after, at the start)."""
    who = who.copy()
    edges = np.r_[0, np.flatnonzero(np.diff(who)) + 1, len(who)]
    for s, e in zip(edges[:-1], edges[1:]):
        if e - s < SHORTEST_RUN and len(edges) > 2:
            who[s:e] = who[s - 1] if s else who[e] if e < len(who) else who[s]
    return who


Engine = ResemblyzerDiarizer  # the adapter channels.diarization.load_engine loads by name
