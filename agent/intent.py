"""Intent classification: a trained artefact (encoder + linear head + calibration) and its loader.

An artefact is a directory holding ``config.json`` (labels, encoder, temperature, threshold,
metrics) and ``head.safetensors`` (the linear layer). ``finetune/intent.py`` writes them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .encoder import SentenceEncoder
from .types import AgentError, IntentScore

FORMAT = "support-agent-intent/1"
DEFAULT_DIR = Path(__file__).parent / "data" / "intent"


@dataclass
class IntentHead:
    labels: list[str]
    weight: np.ndarray  # (classes, dim)
    bias: np.ndarray  # (classes,)
    temperature: float  # fitted on validation data so probabilities are calibrated
    threshold: float  # below this top probability the agent escalates (see finetune/intent.py)
    encoder: str
    metrics: dict

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        logits = (embeddings @ self.weight.T + self.bias) / self.temperature
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def save(self, directory: Path) -> None:
        from safetensors.numpy import save_file

        directory.mkdir(parents=True, exist_ok=True)
        # safetensors writes raw memory: a Fortran-ordered array (sklearn's coef_) would be scrambled.
        save_file({"weight": np.ascontiguousarray(self.weight, dtype=np.float32),
                   "bias": np.ascontiguousarray(self.bias, dtype=np.float32)},
                  str(directory / "head.safetensors"))
        config = {"format": FORMAT, "encoder": self.encoder, "labels": self.labels,
                  "temperature": self.temperature, "threshold": self.threshold, "metrics": self.metrics}
        (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> "IntentHead":
        directory = DEFAULT_DIR if str(directory) == "default" else Path(directory)
        config_file, head_file = directory / "config.json", directory / "head.safetensors"
        if not config_file.is_file() or not head_file.is_file():
            raise AgentError(f"no intent model in {directory}: expected config.json and head.safetensors "
                             f"(train one with: python -m finetune.intent --out {directory})")
        from safetensors.numpy import load_file

        config = json.loads(config_file.read_text(encoding="utf-8"))
        if config.get("format") != FORMAT:
            raise AgentError(f"{config_file} is not a {FORMAT} model (format: {config.get('format')!r})")
        tensors = load_file(str(head_file))
        return cls(labels=config["labels"], weight=tensors["weight"], bias=tensors["bias"],
                   temperature=float(config["temperature"]), threshold=float(config["threshold"]),
                   encoder=config["encoder"], metrics=config.get("metrics", {}))


class IntentClassifier:
    """Top intents with calibrated probabilities for each text."""

    def __init__(self, model: str = "default", encoder: SentenceEncoder | None = None):
        self.head = IntentHead.load(model)
        self.encoder = encoder or SentenceEncoder(self.head.encoder)

    @property
    def threshold(self) -> float:
        return self.head.threshold

    def predict(self, texts: list[str], k: int = 5) -> list[list[IntentScore]]:
        probs = self.head.probabilities(self.encoder.encode(texts))
        ranked = np.argsort(-probs, axis=1)[:, :k]
        return [[IntentScore(self.head.labels[j], round(float(p[j]), 4)) for j in row]
                for p, row in zip(probs, ranked)]
