"""The learned hand-over detector: when a person must take a message over, read from its meaning.

The explicit cues in ``agent.sentiment`` (phrases for a person asked for, legal threats, complaints,
going public, anger) caught 47 of 83 hand-over messages in a test set written after them: customers
say "could your team leader give me a bell" or "put me onto someone who actually works there",
which no phrase list anticipates. This is a logistic regression over the intent model's sentence
embedding (no second encoder pass, about 0.01 ms a message) with one class for ordinary requests
and one for each reason. ``finetune/handover.py`` fits it on hand-written messages
(``data/handover/train.jsonl``: emails, chats and call transcripts, with ordinary requests that
mention people, lawyers, bots and problems) and on the intent model's own training queries as
ordinary requests, and stores it in the intent artefact (``handover.safetensors``), since it reads
that model's embeddings.

How the two combine (``agent.sentiment.handover_reason``): a cue counts unless the model is sure
the message is ordinary (probability of "none" at least ``GATE``: "I need a printout for court" is
not a legal threat), and a request for a person, a threat of legal action or explicit fury counts
even then (``agent.sentiment.cue_reason``: the model read "can someone call me back about my pin" as
ordinary at 0.97); without a cue, the model
hands over when one reason's probability is at least ``THRESHOLD``. Both were chosen on
``data/handover/dev.jsonl``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .lexical import softmax

LABELS = ("none", "person", "legal", "complaint", "public", "angry")
GATE = 0.8  # a cue is overruled when the model gives "none" at least this
# Without a cue, a reason this probable hands the message over. The cues catch the plainly worded
# hand-overs; the detector is for the rest, and below this it reads too many calm whole messages,
# written by people rather than built, as angry or asking for a person (docs/experiments/handover.md).
THRESHOLD = 0.97
C = 16.0  # inverse regularisation of the logistic regression
# How much more a hand-written ordinary request counts than one of the intent model's training queries:
# those are 95% of the "none" class, and the few written to look like hand-overs ("thank you so much",
# "sorry about my rude message earlier") were outweighed. Chosen on data/handover/dev.jsonl (1, 5, 20,
# 50: 5 is the largest that hands over no fewer real hand-overs there; ordinary ones 11 -> 10 of 90).
HAND_WRITTEN_NONE_WEIGHT = 5.0


@dataclass
class HandoverHead:
    weight: np.ndarray  # (len(LABELS), dim)
    bias: np.ndarray  # (len(LABELS),)

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """(rows, len(LABELS)): each message's probability of each label."""
        return softmax(embeddings @ self.weight.T + self.bias)

    def per_message(self, embeddings: np.ndarray) -> list[dict[str, float]]:
        """Each message's probabilities by label: what ``agent.sentiment.handover_reason`` reads."""
        return [dict(zip(LABELS, row)) for row in self.probabilities(embeddings).tolist()]

    @classmethod
    def fit(cls, embeddings: np.ndarray, labels: list[str], weights: np.ndarray | None = None) -> "HandoverHead":
        """Multinomial logistic regression, classes weighted by inverse frequency (the ordinary
        requests outnumber each reason about a hundred to one); ``weights``: each example's weight
        within its class, before that balancing."""
        from sklearn.linear_model import LogisticRegression

        y = np.array([LABELS.index(label) for label in labels])
        weights = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
        totals = np.bincount(y, weights=weights, minlength=len(LABELS))
        present = totals > 0
        balance = np.zeros(len(LABELS))
        balance[present] = totals.sum() / (present.sum() * totals[present])  # what class_weight="balanced" does
        model = LogisticRegression(C=C, max_iter=3000).fit(embeddings, y, sample_weight=weights * balance[y])
        weight = np.zeros((len(LABELS), embeddings.shape[1]), dtype=np.float32)
        bias = np.full(len(LABELS), -1e4, dtype=np.float32)  # a label without examples is never predicted
        weight[model.classes_], bias[model.classes_] = model.coef_, model.intercept_
        return cls(weight, bias)

    def save(self, path: Path) -> None:
        from safetensors.numpy import save_file

        save_file({"weight": np.ascontiguousarray(self.weight, dtype=np.float32),
                   "bias": np.ascontiguousarray(self.bias, dtype=np.float32)}, str(path),
                  metadata={"labels": ",".join(LABELS)})

    @classmethod
    def load(cls, path: Path) -> "HandoverHead":
        from safetensors import safe_open
        from safetensors.numpy import load_file

        from .types import AgentError

        with safe_open(str(path), "np") as f:
            labels = tuple((f.metadata() or {}).get("labels", "").split(","))
        if labels != LABELS:
            raise AgentError(f"{path}: hand-over labels {labels} are not {LABELS}")
        t = load_file(str(path))
        return cls(t["weight"], t["bias"])
