"""Everything the intent model fits on validation data after training: probabilities, thresholds, figures.

Validation data is the held-out queries as they are and inside whole messages (``Embedded``: their
embeddings, and their sentences' embeddings, as the agent computes them). On it: a temperature and
the lexical model's weight (calibrated probabilities), the two escalation thresholds under one
budget, and the scorer that decides which sentences ask a further request. Every
decision uses the head's own methods (``agent.intent.IntentHead``), so what is fitted here is what
the agent does.
"""
from __future__ import annotations

import math
import numpy as np

from agent.intent import IntentHead
from agent.requests import FEATURES, SecondRequests
from agent.escalation import classifier_reason, escalates
from agent.handover import handover_reason
from agent.sentiment import sentiment
from agent.types import AgentError
from finetune.intent_data import IGNORE, Embedded

# Extra requests wrongly found in single-request messages that the second-request scorer may allow.
FALSE_SECOND_BUDGET = 0.02


def fit_calibration(logits: np.ndarray, labels: np.ndarray, lexical: np.ndarray | None = None
                    ) -> tuple[float, float]:
    """(temperature, lexical weight) minimising validation negative log-likelihood: temperature
    scaling (Guo et al., 2017) of the head's logits, with the lexical model's log-probabilities
    (``lexical``, if given) added at the weight that predicts validation best. Rows labelled
    ``IGNORE`` (two-request messages) are left out."""
    from scipy.optimize import minimize

    known = labels != IGNORE
    logits, labels = logits[known], labels[known]
    extra = np.zeros_like(logits) if lexical is None else lexical[known]
    rows = np.arange(len(labels))

    def nll(params: np.ndarray) -> float:
        z = params[0] * logits + params[1] * extra
        z = z - z.max(axis=1, keepdims=True)
        return float(-(z[rows, labels] - np.log(np.exp(z).sum(axis=1))).mean())
    bounds = [(0.05, 20.0), (0.0, 0.0 if lexical is None else 5.0)]  # 1/temperature, lexical weight
    best = minimize(nll, x0=np.array([1.0, 0.0]), method="L-BFGS-B", bounds=bounds).x
    return 1.0 / float(best[0]), float(best[1])


def calibrate(head: IntentHead, validation: Embedded) -> None:
    """Set the head's temperature and lexical weight on the validation texts."""
    texts = validation.texts
    head.temperature, head.lexical_weight = fit_calibration(
        head.logits(validation.vectors), validation.labels,
        head.lexical.log_probabilities(texts) if head.lexical else None)


def out_of_scope_scores(head: IntentHead, data: Embedded) -> np.ndarray:
    return head.message_out_of_scope_scores(data.vectors, data.parts)


def classifier_reading(head: IntentHead, data: Embedded, probs: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Each message's top in-scope probability, and whether it is out of scope (``IntentHead.out_of_scope``)."""
    probs = head.probabilities(data.vectors, data.texts) if probs is None else probs
    return probs[:, head.in_scope].max(axis=1), head.out_of_scope(probs, out_of_scope_scores(head, data) if head.oos else None)


def escalations(head: IntentHead, data: Embedded, probs: np.ndarray | None = None) -> np.ndarray:
    """What the classifier escalates: unsure, or out of scope (its out-of-scope class, or far from every intent)."""
    return np.array([classifier_reason(p, o, head.threshold) is not None
                     for p, o in zip(*classifier_reading(head, data, probs))], dtype=bool)


def handed_over(head: IntentHead, data: Embedded) -> np.ndarray:
    """What the customer's own words hand to a person, whatever the intent (the agent's other reasons):
    the cues, and the head's hand-over model if it has one."""
    texts = data.texts
    learned = head.handover.per_message(data.vectors) if head.handover else [None] * len(texts)
    return np.array([handover_reason(t, sentiment(t), p) is not None for t, p in zip(texts, learned)], dtype=bool)


def escalated(head: IntentHead, data: Embedded, probs: np.ndarray | None = None) -> np.ndarray:
    """What the agent escalates, for every reason it has (``agent.escalation.escalates``)."""
    return np.array([escalates(h, p, o, head.threshold)
                     for h, p, o in zip(handed_over(head, data), *classifier_reading(head, data, probs))], dtype=bool)


def answered(head: IntentHead, data: Embedded) -> Embedded:
    """The texts of ``data`` labelled with an intent the agent answers (not two-request messages, not the
    out-of-scope class)."""
    return data.subset(np.flatnonzero(np.isin(data.labels, head.in_scope)))


def fit_thresholds(head: IntentHead, data: Embedded, budget: float, standardise: bool = True) -> None:
    """Set both escalation thresholds on validation data, so that escalation by the classifier takes at
    most ``budget`` of the correctly answered messages, split evenly between low confidence and out of
    scope. (What the customer's words hand over is not taken off it: on messages built like real ones,
    the hand-over detector's own mistakes would leave the thresholds nothing.) ``standardise=False``
    keeps the head's out-of-scope scale as it is (None: the distance alone)."""
    data = answered(head, data)
    probs = head.probabilities(data.vectors, data.texts)
    correct = probs.argmax(axis=1) == data.labels
    if not correct.any():
        raise AgentError("no validation message is classified correctly: cannot choose escalation thresholds")
    half = budget / 2
    # Sample quantiles (not interpolated), rounded outwards: each threshold takes no more than its half.
    low = float(np.quantile(probs[:, head.in_scope].max(axis=1)[correct], half, method="lower"))
    if standardise:
        right = data.subset(np.flatnonzero(correct))
        head.oos.fit_scale(right.vectors, head.calibrated_logits(right.vectors))
    far = float(np.quantile(out_of_scope_scores(head, data)[correct], 1 - half, method="higher"))
    head.threshold, head.oos.threshold = math.floor(low * 1e4) / 1e4, math.ceil(far * 1e4) / 1e4


class Requests:
    """Each message's probabilities and its parts', computed once, for fitting the second-request scorer."""

    def __init__(self, head: IntentHead, data: Embedded):
        self.head = head
        self.probs = head.probabilities(data.vectors, data.texts)
        self.parts = [(head.probabilities(parts, data.part_texts(i)),
                       head.out_of_scope_scores(parts) if head.oos is not None else None) if len(parts) else (None, None)
                      for i, parts in enumerate(data.parts)]
        self.texts = [data.part_texts(i) for i in range(len(data.drawn))]
        self.askers = [np.array(d.askers, dtype=bool) for d in data.drawn]

    def candidates(self, wanted: list[set[int]]) -> tuple[np.ndarray, np.ndarray]:
        """(features, is a further request) of every candidate of every message (``agent.requests``)."""
        x, y = [], []
        for p, (part_probs, part_oos), texts, askers, want in zip(self.probs, self.parts, self.texts, self.askers, wanted):
            if part_probs is None:
                continue
            for c in self.head.candidates(p, part_probs, part_oos, texts, askers):
                x.append(c.features)
                y.append(c.column in want)
        return np.array(x).reshape(len(x), len(FEATURES)), np.array(y, dtype=bool)

    def found(self, threshold: float) -> list[set[int]]:
        """Each message's requests (intent columns) as the agent finds them at this threshold."""
        return [{j for j, _, _ in self.head.requests(p, part_probs, part_oos, texts, askers, threshold)}
                for p, (part_probs, part_oos), texts, askers in zip(self.probs, self.parts, self.texts, self.askers)]


SECOND_REQUEST_THRESHOLDS = [round(t, 3) for t in np.arange(0.3, 0.96, 0.025)]


def fit_second_requests(head: IntentHead, single: Embedded, double: Embedded,
                        budget: float = FALSE_SECOND_BUDGET) -> dict:
    """The second-request scorer (``agent.requests``): a logistic regression fitted on the candidates of
    one- and two-request messages, and the threshold that finds both requests of the most two-request
    messages while at most ``budget`` of the one-request messages get a request they do not make; returns
    its figures on both sets."""
    from sklearn.linear_model import LogisticRegression

    singles, doubles = Requests(head, single), Requests(head, double)
    wanted_single = [{int(d.label)} for d in single.drawn]
    wanted_double = [{p for p in d.part_labels if p != IGNORE} for d in double.drawn]
    x1, y1 = singles.candidates(wanted_single)
    x2, y2 = doubles.candidates(wanted_double)
    x, y = np.concatenate([x1, x2]), np.concatenate([y1, y2])
    head.second_requests = None
    if y.all() or not y.any():
        return {"second_requests": "none: the validation messages offer no candidates of both kinds"}
    model = LogisticRegression(C=1.0, max_iter=2000).fit(x, y)
    head.second_requests = SecondRequests(model.coef_[0], float(model.intercept_[0]), threshold=float("inf"))
    best = None
    for threshold in SECOND_REQUEST_THRESHOLDS:
        extra = float(np.mean([len(r) > 1 for r in singles.found(threshold)]))
        if extra > budget:
            continue
        both = float(np.mean([w <= r for w, r in zip(wanted_double, doubles.found(threshold))]))
        if best is None or both > best[0]:
            best = (both, extra, threshold)
    if best is None:
        head.second_requests = None
        return {"second_requests": f"none: every threshold gives over {budget:.0%} of one-request messages another"}
    both, extra, threshold = best
    head.second_requests.threshold = float(threshold)
    return {"second_request_threshold": head.second_requests.threshold, "candidates": len(y),
            "single_with_extra": round(extra, 4), "two_requests_both_found": round(both, 4),
            "single": len(single.drawn), "two_requests": len(double.drawn)}


def evaluate(head: IntentHead, data: Embedded, names: list[str]) -> dict:
    """Accuracy, macro-F1 and escalation figures on labelled texts (two-request messages left out)."""
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    outside = data.subset(np.flatnonzero(~np.isin(data.labels, head.in_scope) & (data.labels != IGNORE)))
    data = answered(head, data)
    probs = head.probabilities(data.vectors, data.texts)
    labels = [names[i] for i in data.labels]
    predicted = [names[i] for i in head.in_scope[probs[:, head.in_scope].argmax(axis=1)]]
    to_person = escalated(head, data, probs)
    correct = np.array([p == t for p, t in zip(predicted, labels)])
    names = [names[i] for i in head.in_scope]
    p, r, f, n = precision_recall_fscore_support(labels, predicted, labels=names, zero_division=0)
    extra = {}
    if outside.drawn:  # the held-out requests of the out-of-scope class
        extra["out_of_scope_escalated"] = round(float(escalated(head, outside).mean()), 4)
    return {
        **extra,
        "examples": len(labels),
        "accuracy": round(float(accuracy_score(labels, predicted)), 4),
        "macro_f1": round(float(f1_score(labels, predicted, labels=names, average="macro", zero_division=0)), 4),
        "escalated_fraction": round(float(to_person.mean()), 4),
        "answered_accuracy": round(float(correct[~to_person].mean()) if (~to_person).any() else 0.0, 4),
        "correct_and_answered": round(float((correct & ~to_person).mean()), 4),
        "per_intent": {lab: {"precision": round(float(a), 4), "recall": round(float(b), 4), "f1": round(float(c), 4),
                             "support": int(d)} for lab, a, b, c, d in zip(names, p, r, f, n)},
        "_predicted": predicted,
        "_truth": labels,
    }
