"""Sentiment and the cues that hand a conversation to a person.

Sentiment is VADER (Hutto & Gilbert, 2014; the maintained ``vaderSentiment`` package): a lexicon
and rule model built for short informal text, with capitals, "!!!" and negation handled, offline
and about 0.1 ms a message, which fits a per-message gate. Its compound score reads ordinary
problems ("my card has not arrived") as neutral and abuse as strongly negative. Lexicons do not
see intent to act, so requests for a person and legal threats are matched as explicit phrases.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

NEGATIVE, POSITIVE = -0.05, 0.05  # VADER's published cut-offs for the compound score
ANGRY = -0.6  # strongly negative on its own means an upset customer

_STAFF = r"(?:person|human|someone|somebody|people|manager|supervisor|agent|representative|advis[eo]r|operator|staff)"
HUMAN_REQUEST = re.compile(
    rf"\b(?:speak|talk|chat|get\s+through)\s+(?:to|with)\s+(?:a|an|some|your|the)?\s*(?:real\s+|actual\s+|live\s+)?"
    rf"{_STAFF}\b"
    r"|\b(?:get|give|want|need|find)\s+(?:me\s+)?(?:a|an|the|your|some)\s+(?:real\s+|actual\s+|live\s+)?"
    r"(?:manager|supervisor|human|person|representative|operator)\b"
    r"|\b(?:real|actual|live)\s+(?:person|human)\b|\b(?:human|live|real)\s+(?:agent|operator|representative)\b"
    r"|\bhuman\s+being\b|\bcall\s+me\s+back\b|\bescalate\b"
    r"|\b(?:put|transfer|connect)\s+me\s+(?:through\s+)?to\b"
    # What callers say to a phone menu: the one word, "agent" or "representative, please".
    r"|^\W*(?:an?\s+)?(?:agent|representative|operator|human|person|manager)(?:\s*,?\s*please)?\W*$", re.I)
LEGAL = re.compile(
    r"\b(?:lawyers?|solicitors?|attorneys?|legal\s+action|court|sue|suing|small\s+claims|ombudsman|"
    r"financial\s+conduct\s+authority|FCA|regulator|trading\s+standards|formal\s+complaint)\b", re.I)
ANGER = re.compile(
    r"\b(?:furious|outraged|disgusted|disgusting|disgrace(?:ful)?|unacceptable|ridiculous|useless|pathetic|"
    r"incompetent|worst|scam|fed\s+up|sick\s+of|joke|appalling|shocking|livid|angry)\b|!{2,}", re.I)


@dataclass
class Sentiment:
    label: str  # negative, neutral, positive
    score: float  # VADER compound, -1 to 1


@lru_cache(maxsize=1)
def _analyser():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def sentiment(text: str) -> Sentiment:
    score = round(_analyser().polarity_scores(text)["compound"], 3)
    label = "negative" if score <= NEGATIVE else "positive" if score >= POSITIVE else "neutral"
    return Sentiment(label, score)


def handover_reason(text: str, mood: Sentiment) -> str | None:
    """Why a person must take this message over, or None."""
    if HUMAN_REQUEST.search(text):
        return "asks for a person"
    if LEGAL.search(text):
        return "legal or regulatory threat"
    if mood.score <= ANGRY or (ANGER.search(text) and mood.score < NEGATIVE):
        return f"angry customer (sentiment {mood.score:+.2f})"
    return None
