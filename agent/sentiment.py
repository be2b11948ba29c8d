"""Sentiment: VADER's reading of a message, which the reply's tone follows.

VADER (Hutto & Gilbert, 2014; the maintained ``vaderSentiment`` package) is a lexicon and rule model
built for short informal text, with capitals, "!!!" and negation handled, offline and about 0.1 ms a
message, which fits a per-message gate. Its compound score reads ordinary problems ("my card has not
arrived") as neutral and abuse as strongly negative. What hands a message to a person (requests for
a person, legal threats, complaints, anger) is ``agent.handover``; its names are still importable
from here for code written before the move.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

NEGATIVE, POSITIVE = -0.05, 0.05  # VADER's published cut-offs for the compound score


@dataclass
class Sentiment:
    label: str  # negative, neutral, positive
    score: float  # VADER compound, -1 to 1
    source: str = "vader"  # what set the label: VADER's score, or "hand-over" (see agent.handover.given_reason)


@lru_cache(maxsize=2)
def _analyser(without: tuple[str, ...] = ()):
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyser = SentimentIntensityAnalyzer()
    if without:
        analyser.lexicon = {w: v for w, v in analyser.lexicon.items() if w not in without}
    return analyser


def compound(text: str, without: tuple[str, ...] = ()) -> float:
    """VADER's compound score of ``text``, rounded to 3 places; ``without``: lexicon words read as neutral."""
    return round(_analyser(without).polarity_scores(text)["compound"], 3)


def sentiment(text: str) -> Sentiment:
    """VADER's reading of the text: what the reply's tone (an apology when negative) follows."""
    score = compound(text)
    label = "negative" if score <= NEGATIVE else "positive" if score >= POSITIVE else "neutral"
    return Sentiment(label, score)


# Hand-over names that lived here before agent.handover held them all; resolved on first use, so that
# importing this module does not import agent.handover (which imports this one).
_MOVED = frozenset({"ANGRY", "PERSON", "TURNED_DOWN", "MACHINE", "LEGAL", "LEGAL_ACTION", "COMPLAINT", "PUBLIC",
                    "FURY", "ANGER", "PROBLEM_WORDS", "REASONS", "HOSTILE_REASONS", "given_reason",
                    "handover_reason", "cue_reason"})


def __getattr__(name: str):
    if name in _MOVED:
        from . import handover

        return getattr(handover, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
