"""A message's further requests: which of its sentences asks something besides its main request.

Each sentence that may ask (not a subject line or a detail field) offers a candidate intent: its own
most probable one, or, where that is the message's main intent or the out-of-scope class, its second
choice (a sentence read in the context of the whole message leans towards the message's topic: "and um
are there certain cash machines I should be using" reads as the withdrawal charge it followed). A
logistic regression over what the intent model says of the candidate, in the sentence and in the whole
message, and over the sentence's shape scores it, and candidates scoring at least the fitted threshold
are further requests. ``finetune.calibration.fit_second_requests`` fits the weights and the threshold on
validation messages built with one and with two requests, so few one-request messages gain a request.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

# A sentence that opens by announcing something new: "Also, ...", "And while I have you ...", "2) can i ...".
OPENS_NEW_REQUEST = re.compile(
    r"^\W*(?:(?:and|but|so|oh|um+|uh+|erm|yeah|ok(?:ay)?|thanks|right|well)\W+)*"
    r"(?:also|and|second(?:ly)?|\d\)|another|one\s+more|separate(?:ly)?|plus|p\.?s\.?|while\s+i\s+have\s+you|"
    r"on\s+top\s+of\s+that|(?:the\s+)?other\s+thing|as\s+well)(?!\w)", re.I)
FEATURES = (
    "log p(candidate | sentence)",
    "log p(main | sentence)",  # a sentence about the main request leans to a neighbour of it
    "sentence's out-of-scope score over the threshold",
    "log p(candidate | message)",
    "sentence opens a new request",
    "candidate is the sentence's second choice",
    "sentence after the main request's",
    "log p(sentence's top intent)",
    "log words in the sentence",
    "log p(main | message)",
)
FLOOR = 1e-4  # probabilities are floored here before the log: a zero would dominate the score


@dataclass
class Candidate:
    column: int  # the candidate intent's column
    part: int  # the sentence it comes from
    probability: float  # its probability in that sentence
    features: np.ndarray  # (len(FEATURES),)


@dataclass
class SecondRequests:
    """A logistic regression scoring candidates, and the score from which a candidate is a request."""

    weight: np.ndarray  # (len(FEATURES),)
    bias: float
    threshold: float

    def scores(self, candidates: list[Candidate]) -> np.ndarray:
        if not candidates:
            return np.zeros(0)
        x = np.stack([c.features for c in candidates]) @ self.weight + self.bias
        return 1.0 / (1.0 + np.exp(-x))

    def to_config(self) -> dict:
        return {"features": list(FEATURES), "weight": [round(float(w), 6) for w in self.weight],
                "bias": round(float(self.bias), 6), "threshold": self.threshold}

    @classmethod
    def from_config(cls, config: dict | None) -> "SecondRequests | None":
        """The scorer a config.json holds; None where it holds none, or one over other features (an older
        model: refit it with ``python -m finetune.thresholds``)."""
        if not config or config.get("features") != list(FEATURES):
            return None
        return cls(np.array(config["weight"], dtype=np.float64), float(config["bias"]), float(config["threshold"]))


def candidates(probs: np.ndarray, part_probs: np.ndarray, part_texts: list[str], main: int, answered: np.ndarray,
               part_oos: np.ndarray | None = None, oos_threshold: float = 0.0,
               askers: np.ndarray | None = None) -> list[Candidate]:
    """The candidate further requests of a message whose main intent is column ``main``: ``probs`` the
    message's probabilities, ``part_probs`` (parts, columns) its sentences', ``answered`` the columns of
    the intents the agent answers, ``part_oos`` the sentences' out-of-scope scores (None: no statistics),
    ``askers`` which sentences may ask (None: all)."""
    main_part = int(part_probs[:, main].argmax())
    out = []
    for i, row in enumerate(part_probs):
        if askers is not None and not askers[i]:
            continue
        first, second = np.argsort(-row)[:2]
        rank = 0 if first != main and first in answered else 1
        j = int(first if rank == 0 else second)
        if j == main or j not in answered:
            continue
        outside = 0.0 if part_oos is None else float(part_oos[i]) - oos_threshold
        features = [np.log(max(row[j], FLOOR)), np.log(max(row[main], FLOOR)), outside,
                    np.log(max(probs[j], FLOOR)), bool(OPENS_NEW_REQUEST.match(part_texts[i])), rank, i > main_part,
                    np.log(max(row.max(), FLOOR)), np.log(max(len(part_texts[i].split()), 1)),
                    np.log(max(probs[main], FLOOR))]
        out.append(Candidate(j, i, float(row[j]), np.array(features, dtype=np.float64)))
    return out
