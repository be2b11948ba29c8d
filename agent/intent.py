"""Intent classification: a trained artefact (encoder [+ LoRA adapter] + linear head + calibration).

An artefact is a directory holding ``config.json`` (labels, encoder, temperature, thresholds,
metrics), ``head.safetensors`` (the linear layer and the out-of-scope statistics) and, for a
fine-tuned encoder, ``adapter/`` (a LoRA adapter for the base encoder). ``finetune/intent.py``
writes them.

An artefact may also hold ``lexical.safetensors``, a TF-IDF logistic regression
(``agent/lexical.py``) whose log-probabilities are added to the head's logits with a weight fitted
on validation (``lexical_weight``), together with the temperature; and ``handover.safetensors``, the
learned hand-over detector (``agent/handover.py``), which reads this model's embeddings.

Two signals decide escalation: the calibrated top probability (unsure between known intents) and
an out-of-scope score (unlike anything the model was trained on; see ``OutOfScope``). Both
thresholds come from validation.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from . import model_versions
from .encoder import SentenceEncoder, load_sentence_encoder
from .escalation import classifier_reason
from .handover import HandoverHead
from .lexical import LexicalModel, softmax
from .requests import Candidate, SecondRequests, candidates
from .sentences import DETAIL, SUBJECT, Reading, read
from .settings import Settings
from .types import AgentError, IntentScore

FORMAT = "support-agent-intent/1"
OUT_OF_SCOPE = "out_of_scope"  # the class of requests no intent answers, where a model was trained with one
DEFAULT_DIR = Path(__file__).parent / "data" / "intent"
LEXICAL_FILE = "lexical.safetensors"
HANDOVER_FILE = "handover.safetensors"


@dataclass
class OutOfScope:
    """How unlike the intents it knows a message is: two measures, each standardised on validation
    messages the model gets right, and summed.

    - The Mahalanobis distance of the embedding from the nearest intent's training examples (class
      means and a shared, tied precision matrix; Lee et al., 2018). It catches other domains (the
      weather, music), which lie far from all of banking.
    - The free energy of the head's calibrated logits, -logsumexp (Liu et al., 2020). It is high when
      no intent's logit fires, and catches near-domain requests (a mortgage rate, a pension) that lie
      close to banking in the embedding space but match no intent well.

    Models saved without the standardisation (``scale``) score by the distance alone.
    """

    means: np.ndarray  # (classes, dim)
    precision: np.ndarray  # (dim, dim)
    threshold: float  # scores above this are out of scope
    scale: np.ndarray | None = None  # (2, 2): mean and standard deviation of log distance, then of energy

    def score(self, embeddings: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """Per row, higher is further out of scope; ``logits``: the head's calibrated logits for the rows."""
        distance = self.distance(embeddings)
        if self.scale is None:
            return distance
        return ((self._measures(distance, logits) - self.scale[:, 0]) / self.scale[:, 1]).sum(axis=1)

    def fit_scale(self, embeddings: np.ndarray, logits: np.ndarray) -> None:
        """Standardise both measures on these rows (in-scope messages the model gets right)."""
        measures = self._measures(self.distance(embeddings), logits)
        # float32, as saved: the threshold is chosen on exactly the scores a loaded model computes
        spread = np.maximum(measures.std(axis=0), 1e-6)
        self.scale = np.stack([measures.mean(axis=0), spread], axis=1).astype(np.float32)

    @staticmethod
    def _measures(distance: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """(rows, 2): log distance (its spread is closer to normal than the distance's) and free energy."""
        top = logits.max(axis=1)
        energy = -(top + np.log(np.exp(logits - top[:, None]).sum(axis=1)))
        return np.stack([np.log(np.maximum(distance, 1e-6)), energy], axis=1)

    @classmethod
    def fit(cls, embeddings: np.ndarray, labels: np.ndarray) -> "OutOfScope":
        """Class means (of the classes ``labels`` holds) and their tied precision, from these embeddings."""
        from sklearn.covariance import LedoitWolf

        present = np.unique(labels)  # a model's out-of-scope class has no mean: it is what lies far from all
        means = np.stack([embeddings[labels == c].mean(axis=0) for c in present])
        centred = embeddings - means[np.searchsorted(present, labels)]
        precision = LedoitWolf().fit(centred).precision_  # shrinkage keeps 384x384 well conditioned
        return cls(means.astype(np.float32), precision.astype(np.float32), threshold=float("inf"))

    def distance(self, embeddings: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance to the nearest class mean, per row."""
        projected = embeddings @ self.precision  # (n, dim)
        xpx = np.einsum("nd,nd->n", projected, embeddings)
        cross = projected @ self.means.T  # (n, classes)
        return np.maximum(xpx[:, None] - 2 * cross + self._mpm[None, :], 0).min(axis=1)

    @cached_property
    def _mpm(self) -> np.ndarray:
        """Each mean's own term, m P m: the same for every message, so computed once (0.3 ms a call)."""
        return np.einsum("cd,cd->c", self.means @ self.precision, self.means)


@dataclass
class IntentHead:
    labels: list[str]
    weight: np.ndarray  # (classes, dim)
    bias: np.ndarray  # (classes,)
    temperature: float  # fitted on validation data so probabilities are calibrated
    threshold: float  # below this top probability the agent escalates as unsure
    encoder: str
    metrics: dict
    adapter: str | None = None  # LoRA adapter directory, relative to the artefact
    oos: OutOfScope | None = None
    lexical: LexicalModel | None = None
    lexical_weight: float = 0.0  # what the lexical model's log-probabilities add to the logits
    handover: HandoverHead | None = None  # the learned hand-over detector, on this model's embeddings
    second_requests: SecondRequests | None = None  # which sentences ask a further request (agent.requests)

    @property
    def in_scope(self) -> np.ndarray:
        """The columns of the intents the agent answers: all but the out-of-scope class, if it has one."""
        return np.array([i for i, label in enumerate(self.labels) if label != OUT_OF_SCOPE])

    def out_of_scope_class(self, probs: np.ndarray) -> np.ndarray:
        """Per row, whether the out-of-scope class is the most probable (False for a model without it)."""
        if OUT_OF_SCOPE not in self.labels:
            return np.zeros(len(probs), dtype=bool)
        return probs.argmax(axis=1) == self.labels.index(OUT_OF_SCOPE)

    def out_of_scope(self, probs: np.ndarray, scores: np.ndarray | None) -> np.ndarray:
        """Per row, whether the message is out of scope: its most probable class is the out-of-scope class, or
        its out-of-scope score (``message_out_of_scope_scores``; None: no statistics) is beyond the threshold."""
        outside = self.out_of_scope_class(probs)
        return outside | (np.asarray(scores) > self.oos.threshold) if scores is not None and self.oos else outside

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        """The linear head's own scores, before calibration and without the lexical part."""
        return embeddings @ self.weight.T + self.bias

    def calibrated_logits(self, embeddings: np.ndarray) -> np.ndarray:
        """The head's own scores over the temperature: what the probabilities and the out-of-scope
        energy are computed from (the lexical part comes on top, for the probabilities only)."""
        return self.logits(embeddings) / self.temperature

    def out_of_scope_scores(self, embeddings: np.ndarray) -> np.ndarray:
        """``OutOfScope.score`` of each embedding (its energy over the intents answered); the model must have
        out-of-scope statistics."""
        return self.oos.score(embeddings, self.calibrated_logits(embeddings)[:, self.in_scope])

    def message_out_of_scope_scores(self, embeddings: np.ndarray, parts: list[np.ndarray]) -> np.ndarray:
        """Each message's out-of-scope score: the lowest of its own and its parts' (``parts[i]``: the
        embeddings of message i's sentences). A message is as much in scope as its most in-scope
        sentence, so background and courtesies cannot push a clear request out of scope."""
        scores = self.out_of_scope_scores(embeddings)
        sizes = [len(p) for p in parts]
        if sum(sizes):
            flat = self.out_of_scope_scores(np.concatenate([p for p in parts if len(p)]))
            ends = np.cumsum(sizes)
            for i, (size, end) in enumerate(zip(sizes, ends)):
                if size:
                    scores[i] = min(scores[i], flat[end - size:end].min())
        return scores

    def main_request(self, probs: np.ndarray) -> int:
        """The column of the message's most probable intent, the out-of-scope class aside."""
        return int(self.in_scope[probs[self.in_scope].argmax()])

    def candidates(self, probs: np.ndarray, part_probs: np.ndarray, part_oos: np.ndarray | None,
                   part_texts: list[str], askers: np.ndarray | None) -> list[Candidate]:
        """The message's candidate further requests (``agent.requests.candidates``), for its main request."""
        known = self.oos is not None and part_oos is not None
        return candidates(probs, part_probs, part_texts, self.main_request(probs), self.in_scope,
                          part_oos if known else None, self.oos.threshold if known else 0.0, askers)

    def requests(self, probs: np.ndarray, part_probs: np.ndarray | None, part_oos: np.ndarray | None,
                 part_texts: list[str], askers: np.ndarray | None = None,
                 threshold: float | None = None) -> list[tuple[int, float, int]]:
        """A message's requests as (intent column, probability, part index), main first: the message's most
        probable intent (out of scope aside), with the part most likely to ask it, then each further request
        ``agent.requests`` finds among its parts, the likeliest first, scored at least ``threshold``
        (default: the fitted one). ``probs``: the message's probabilities; ``part_probs``: (parts, columns);
        ``part_oos``: the parts' out-of-scope scores (None: no statistics); ``part_texts``: the parts;
        ``askers``: which parts may ask a request of their own (None: all; the agent passes
        ``askers(reading)``). The part index is -1 without parts; a model without a second-request
        scorer finds the main request only."""
        main = self.main_request(probs)
        if part_probs is None or not len(part_probs):
            return [(main, float(probs[main]), -1)]
        found = [(main, float(probs[main]), int(part_probs[:, main].argmax()))]
        if self.second_requests is None:
            return found
        threshold = self.second_requests.threshold if threshold is None else threshold
        offered = self.candidates(probs, part_probs, part_oos, part_texts, askers)
        scores = self.second_requests.scores(offered)
        for k in np.argsort(-scores, kind="stable"):
            c = offered[k]
            if scores[k] >= threshold and c.column not in {f[0] for f in found}:
                found.append((c.column, c.probability, c.part))
        return found

    def probabilities(self, embeddings: np.ndarray, texts: list[str] | None = None) -> np.ndarray:
        """Calibrated probabilities of each intent; ``texts`` (the embedded texts) are needed when the
        model has a lexical part."""
        logits = self.calibrated_logits(embeddings)
        if self.lexical is not None:
            if texts is None:
                raise ValueError("this intent model has a lexical part: probabilities() needs the texts")
            logits = logits + self.lexical_weight * self.lexical.log_probabilities(texts)
        return softmax(logits)

    def _adapter_in(self, directory: Path) -> str | None:
        """The adapter as the artefact names it: relative to its directory (a loaded head holds the full path)."""
        if self.adapter is None or not Path(self.adapter).is_absolute():
            return self.adapter
        return os.path.relpath(Path(self.adapter).resolve(), Path(directory).resolve())

    def save(self, directory: Path) -> None:
        from safetensors.numpy import save_file

        directory.mkdir(parents=True, exist_ok=True)
        # safetensors writes raw memory: a Fortran-ordered array (sklearn's coef_) would be scrambled.
        tensors = {"weight": self.weight, "bias": self.bias}
        if self.oos is not None:
            tensors |= {"oos_means": self.oos.means, "oos_precision": self.oos.precision}
            if self.oos.scale is not None:
                tensors["oos_scale"] = self.oos.scale
        save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()},
                  str(directory / "head.safetensors"))
        for part, file in ((self.lexical, LEXICAL_FILE), (self.handover, HANDOVER_FILE)):
            if part is not None:
                part.save(directory / file)
            else:
                (directory / file).unlink(missing_ok=True)  # a stale one would not match this head
        config = {"format": FORMAT, "encoder": self.encoder, "adapter": self._adapter_in(directory), "labels": self.labels,
                  "temperature": self.temperature, "threshold": self.threshold,
                  "oos_threshold": self.oos.threshold if self.oos else None,
                  "lexical": LEXICAL_FILE if self.lexical is not None else None,
                  "handover": HANDOVER_FILE if self.handover is not None else None,
                  "lexical_weight": self.lexical_weight,
                  "second_requests": self.second_requests.to_config() if self.second_requests else None,
                  "metrics": self.metrics}
        (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path, models_dir: str | Path | None = None) -> "IntentHead":
        directory = resolve(directory, models_dir)
        config_file, head_file = directory / "config.json", directory / "head.safetensors"
        if not config_file.is_file() or not head_file.is_file():
            raise AgentError(f"no intent model in {directory}: expected config.json and head.safetensors "
                             f"(train one with: python -m finetune.intent --out {directory})")
        from safetensors.numpy import load_file

        config = json.loads(config_file.read_text(encoding="utf-8"))
        if config.get("format") != FORMAT:
            raise AgentError(f"{config_file} is not a {FORMAT} model (format: {config.get('format')!r})")
        t = load_file(str(head_file))
        oos = None
        if "oos_means" in t and config.get("oos_threshold") is not None:
            oos = OutOfScope(t["oos_means"], t["oos_precision"], float(config["oos_threshold"]), t.get("oos_scale"))
        adapter, lexical, handover = config.get("adapter"), config.get("lexical"), config.get("handover")
        return cls(labels=config["labels"], weight=t["weight"], bias=t["bias"],
                   temperature=float(config["temperature"]), threshold=float(config["threshold"]),
                   encoder=config["encoder"], metrics=config.get("metrics", {}),
                   adapter=str((directory / adapter).resolve()) if adapter else None, oos=oos,
                   lexical=LexicalModel.load(directory / lexical) if lexical else None,
                   lexical_weight=float(config.get("lexical_weight", 0.0)),
                   handover=HandoverHead.load(directory / handover) if handover else None,
                   second_requests=SecondRequests.from_config(config.get("second_requests")))


def resolve(directory: str | Path, models_dir: str | Path | None = None) -> Path:
    """"default" is the promoted intent version in ``models_dir`` if there is one, else the shipped model."""
    return model_versions.resolve("intent", directory, DEFAULT_DIR, models_dir)


@dataclass
class PartPrediction:
    """What one sentence of a message asks, read in the context of the whole message."""

    index: int  # the sentence's position among the reading's parts
    intent: str  # its own top intent
    probability: float
    out_of_scope_score: float | None
    handover: dict[str, float] | None = None


@dataclass
class Prediction:
    top: list[IntentScore]  # best first
    out_of_scope: bool
    out_of_scope_score: float | None  # the message's (see IntentHead.message_out_of_scope_scores); None without statistics
    probabilities: dict[str, float] = field(default_factory=dict)  # every intent, for retrieval
    embedding: np.ndarray | None = None  # the text's unit-length sentence embedding
    handover: dict[str, float] | None = None  # the hand-over model's probabilities (agent.handover), if it has one
    reading: Reading | None = None  # the message as read: its sentences and roles
    parts: list[PartPrediction] = field(default_factory=list)  # one per reading part
    requests: list[tuple[str, float, int]] = field(default_factory=list)  # (intent, probability, part), main first


def askers(reading: Reading) -> np.ndarray:
    """Which of the reading's parts may ask a request of their own: all but the subject line and detail
    fields (they name the topic and give its details; the sentences around them ask)."""
    return np.array([part.role not in (SUBJECT, DETAIL) for part in reading.parts], dtype=bool)


class IntentClassifier:
    """Top intents with calibrated probabilities, and an out-of-scope flag, for each text; each text
    is read as a message of sentences (``agent.sentences.read``), and each sentence is scored too."""

    def __init__(self, model: str = "default", encoder: SentenceEncoder | None = None,
                 models_dir: str | Path | None = None, settings: Settings | None = None):
        """``settings``: the encoder runtime, its workers and cache (default: ``Settings.load()``)."""
        self.head = IntentHead.load(model, models_dir)
        if encoder is None:
            settings = settings or Settings.load()
            encoder = load_sentence_encoder(self.head.encoder, self.head.adapter, settings.encoder_runtime,
                                            settings.cache_dir, settings.encoder_workers)
        self.encoder = encoder

    @property
    def threshold(self) -> float:
        return self.head.threshold

    def classify(self, texts: list[str], k: int = 5) -> list[Prediction]:
        readings = [read(t) for t in texts]
        model_texts = [r.text or t for r, t in zip(readings, texts)]
        embeddings, parts = self.encoder.encode_parts(model_texts, [r.spans for r in readings])
        head = self.head
        probs = head.probabilities(embeddings, model_texts)
        ranked = head.in_scope[np.argsort(-probs[:, head.in_scope], axis=1)[:, :k]]
        scores = head.message_out_of_scope_scores(embeddings, parts) if head.oos else [None] * len(texts)
        outside = head.out_of_scope(probs, scores if head.oos else None)
        handover = head.handover.per_message(embeddings) if head.handover else [None] * len(texts)
        out = []
        for i, reading in enumerate(readings):
            p, d = probs[i], scores[i]
            part_probs, part_oos, part_handover = None, None, None
            if len(parts[i]):
                part_probs = head.probabilities(parts[i], [s.text for s in reading.parts])
                part_oos = head.out_of_scope_scores(parts[i]) if head.oos else None
                part_handover = head.handover.per_message(parts[i]) if head.handover else None
            out.append(Prediction(
                [IntentScore(head.labels[j], round(float(p[j]), 4)) for j in ranked[i]],
                out_of_scope=bool(outside[i]),
                out_of_scope_score=None if d is None else round(float(d), 4),
                probabilities=dict(zip(head.labels, p.tolist())), embedding=embeddings[i], handover=handover[i],
                reading=reading,
                parts=[PartPrediction(n, head.labels[int(row.argmax())], round(float(row.max()), 4),
                                      None if part_oos is None else float(part_oos[n]),
                                      None if part_handover is None else part_handover[n])
                       for n, row in enumerate(part_probs if part_probs is not None else [])],
                requests=[(head.labels[j], round(q, 4), n)
                          for j, q, n in head.requests(p, part_probs, part_oos, [s.text for s in reading.parts],
                                                       askers(reading))]))
        return out

    def escalates(self, prediction: Prediction) -> bool:
        """Whether the classifier alone hands this message to a person: out of scope, or unsure."""
        return classifier_reason(prediction.top[0].probability, prediction.out_of_scope, self.threshold) is not None

    def predict(self, texts: list[str], k: int = 5) -> list[list[IntentScore]]:
        return [p.top for p in self.classify(texts, k)]
