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
# Anger that needs no second opinion: abuse, swearing, "fed up", "worst bank". Not theft ("someone
# stole my card" is a report, not a temper).
FURY = re.compile(
    r"\b(?:furious|fuming|livid|outraged|outrageous|disgusted|disgusting|disgrace(?:ful)?|appalling|unacceptable|"
    r"ridiculous|pathetic|incompetent|useless|garbage|rubbish|worst|scam(?:mers?)?|crooks|"
    r"(?:terrible|awful|horrible|shocking|poor)\s+(?:service|bank|company|app|experience)|"
    r"(?:are|you)\s+(?:you\s+)?kidding(?:\s+me)?|or\s+i(?:'m|\s+am|\s+will|'ll)\s+(?:be\s+)?(?:leaving|leave|clos\w+)|"
    r"you\s+(?:stole|robbed|thieves|crooks|idiots|clowns)|fed\s+up|sick\s+(?:and\s+tired\s+)?of|had\s+enough\s+of|hate\s+(?:you|this|your)|"
    r"(?:so|very|really|extremely|i\s+am|i'm)\s+angry|what\s+the\s+(?:hell|heck|fuck)|wtf|f+u+c+k\w*|shit\w*|"
    r"bullshit|crap|damn|bloody|(?:is|are|what)\s+a\s+(?:total\s+|complete\s+|absolute\s+)?joke)\b", re.I)
# Words of displeasure that count together with a negative score (frustration with a problem can
# still be answered; "annoyed, third time I ask!!" cannot).
ANGER = re.compile(
    r"\b(?:angry|annoyed|annoying|frustrat\w*|terrible|horrible|awful|shocking|unbelievable|ignor(?:e|ed|es|ing)\s+me|"
    r"never\s+again|bad\s+review|social\s+media|joke)\b|!{2,}|\?{2,}", re.I)
# Words VADER reads as negative that, in a bank's inbox, name the customer's problem rather than their
# mood ("my card was stolen" scores -0.6): neutral when judging anger, so ordinary reports are answered.
PROBLEM_WORDS = (
    "wrong", "stolen", "steal", "lost", "charged", "charges", "failed", "fail", "failing", "problem", "problems",
    "error", "rejected", "rejecting", "mistake", "mistakenly", "accidentally", "no", "cancel", "cancelled",
    "dispute", "broken", "broke", "damaged", "trouble", "blocked", "block", "pay", "denied", "stop",
    "disappeared", "disappear", "fraud", "fraudulent", "hacked", "victim", "missing", "unsuccessful", "stuck",
    "delay", "difficulty", "unsupported", "messed", "declined", "decline", "incorrect", "overcharged", "defect",
    "worried", "confused")


@dataclass
class Sentiment:
    label: str  # negative, neutral, positive
    score: float  # VADER compound, -1 to 1


@lru_cache(maxsize=2)
def _analyser(problems_neutral: bool = False):
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyser = SentimentIntensityAnalyzer()
    if problems_neutral:
        analyser.lexicon = {w: v for w, v in analyser.lexicon.items() if w not in PROBLEM_WORDS}
    return analyser


def sentiment(text: str) -> Sentiment:
    """VADER's reading of the text: what the reply's tone (an apology when negative) follows."""
    score = round(_analyser().polarity_scores(text)["compound"], 3)
    label = "negative" if score <= NEGATIVE else "positive" if score >= POSITIVE else "neutral"
    return Sentiment(label, score)


def handover_reason(text: str, mood: Sentiment) -> str | None:
    """Why a person must take this message over, or None."""
    if HUMAN_REQUEST.search(text):
        return "asks for a person"
    if LEGAL.search(text):
        return "legal or regulatory threat"
    fury = FURY.search(text)
    if fury:
        return f"angry customer ('{fury.group()}', sentiment {mood.score:+.2f})"
    temper = round(_analyser(problems_neutral=True).polarity_scores(text)["compound"], 3) if mood.score < NEGATIVE else 0
    if temper <= ANGRY or (temper < NEGATIVE and ANGER.search(text)):
        return f"angry customer (sentiment {mood.score:+.2f}, {temper:+.2f} without the problem's own words)"
    return None
