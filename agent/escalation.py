"""The one escalation decision: whether a person must answer a message, why, and which sentence says so.

Reasons, the gravest first: what the customer's words hand to a person (a legal threat, going public,
a complaint, a person asked for, anger: the cues and the learned detector of
``agent.handover``), then out of scope (no sentence of the message is like a request the intent model
knows), then low confidence (the model is unsure between intents). All are read from the customer's
own sentences (``agent.sentences``): a greeting, a sign-off, quoted history or the agent's turns in a
transcript never hand a message over, and a long calm email is judged by what it says.

Every escalation names its evidence: the sentence that caused it, so a person sees at a glance why.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .handover import REASONS, cue_reason, handover_reason
from .sentiment import Sentiment, sentiment

if TYPE_CHECKING:  # the classifier asks this module too (IntentClassifier.escalates)
    from .intent import Prediction

OUT_OF_SCOPE = "out of scope: unlike any request the intent model knows"
LEARNED = "(hand-over model"


@dataclass
class Escalation:
    reason: str | None
    evidence: str | None = None  # the sentence behind the reason

    def __bool__(self) -> bool:
        return self.reason is not None


def decide(prediction: Prediction, threshold: float, mood: Sentiment) -> Escalation:
    """Why a person must answer this message (``reason`` None: the agent may answer), with the sentence
    that says so. ``threshold``: the intent model's confidence threshold; ``mood``: the message's
    sentiment."""
    reading = prediction.reading
    text = reading.text if reading is not None else ""
    reason = handover_reason(text, mood, prediction.handover)
    if reason is not None:
        return Escalation(reason, handover_evidence(prediction, reason))
    reason = classifier_reason(prediction.top[0].probability, prediction.out_of_scope, threshold)
    if reason is not None:
        return Escalation(reason, request_sentence(prediction))
    return Escalation(None)


def classifier_reason(top_probability: float, out_of_scope: bool, threshold: float) -> str | None:
    """Why the intent classifier's reading alone hands a message over, or None: out of scope (``out_of_scope``,
    see ``IntentHead.out_of_scope``), then unsure (the top intent's probability below ``threshold``)."""
    if out_of_scope:
        return OUT_OF_SCOPE
    if top_probability < threshold:
        return f"low confidence: {top_probability:.2f} is below the threshold {threshold:.2f}"
    return None


def escalates(handed_over: bool, top_probability: float, out_of_scope: bool, threshold: float) -> bool:
    """Whether ``decide`` hands a message over, from its parts (``handed_over``: ``handover_reason`` gave a
    reason): how training counts escalations over many messages at once."""
    return handed_over or classifier_reason(top_probability, out_of_scope, threshold) is not None


def request_sentence(prediction: Prediction) -> str | None:
    """The sentence that asks the message's main request (the whole text for a one-line message)."""
    reading = prediction.reading
    if reading is None or not reading.parts:
        return None
    part = prediction.requests[0][2] if prediction.requests else -1
    return reading.parts[part].text if 0 <= part < len(reading.parts) else reading.text


def handover_evidence(prediction: Prediction, reason: str) -> str | None:
    """The sentence behind a hand-over: where the cue for ``reason`` is, or the sentence the learned
    detector finds most like ``reason``."""
    reading = prediction.reading
    if reading is None or not reading.parts:
        return None
    kind = next((k for k, text in REASONS.items() if reason.startswith(text)), None)
    if LEARNED not in reason:
        for part in reading.parts:
            cue = cue_reason(part.text, sentiment(part.text))
            if cue is not None and cue[0].startswith(REASONS.get(kind, "-")):
                return part.text
    scored = [(p.handover.get(kind, 0.0) if kind else 1 - p.handover["none"], p.index)
              for p in prediction.parts if p.handover]
    if scored:
        return reading.parts[max(scored)[1]].text
    return reading.parts[0].text if len(reading.parts) == 1 else reading.text

