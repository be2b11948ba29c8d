"""Hand-over: when a person must take a message over, and why.

Two readers decide it together. Explicit cues: phrases for a person asked for, legal threats,
complaints, going public and anger (lexicons such as VADER do not see intent to act, so these are
matched as phrases). And a learned detector, a logistic regression over the intent model's sentence
embedding (``HandoverHead``: no second encoder pass, about 0.01 ms a message) with one class for
ordinary requests and one for each reason, which catches what no phrase names ("could your team
leader give me a bell", "put me onto someone who actually works there"). ``finetune/handover.py``
fits it on hand-written messages (``data/handover/train.jsonl``: emails, chats and call transcripts,
with ordinary requests that mention people, lawyers, bots and problems) and on the intent model's own
training queries as ordinary requests, and stores it in the intent artefact
(``handover.safetensors``), since it reads that model's embeddings.

How the two combine (``handover_reason``): a cue counts unless the model is sure the message is
ordinary (probability of "none" at least ``GATE``: "I need a printout for court" is not a legal
threat), and a firm cue counts even then (``cue_reason``: a request for a person, a threat of legal
action, explicit fury); without a cue, the model hands over when the message is not ordinary with a
probability (1 - p("none")) of at least ``THRESHOLD``, for its most probable reason. Both were chosen on
``data/handover/dev.jsonl`` and the development sets of whole messages.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .lexical import softmax
from .sentences import split
from .sentiment import NEGATIVE, Sentiment, compound

LABELS = ("none", "person", "legal", "complaint", "public", "angry")
GATE = 0.8  # a cue is overruled when the model gives "none" at least this
# Without a cue, a message this probably not ordinary (1 - p("none")) is handed over, for its most probable
# reason: whether a person must take over is one question, and a message that is surely a hand-over but
# split between two reasons ("let me talk to a real one": person or angry) is still one. The cues catch the
# plainly worded hand-overs; the detector is for the rest, and below this it reads too many calm whole
# messages, written by people rather than built, as angry or asking for a person (docs/experiments/handover.md).
THRESHOLD = 0.98
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
        """Each message's probabilities by label: what ``handover_reason`` reads."""
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


# The explicit cues.
ANGRY = -0.6  # strongly negative on its own means an upset customer

_STAFF = (r"(?:person|human(?:\s+being)?|someone|somebody|anyone|anybody|people|manager|supervisor|agents?|"
          r"representative|rep|advis[eo]r|operator|staff(?:\s+member)?|member\s+of\s+(?:staff|your\s+team)|employee|"
          r"colleague|specialist|whoever(?:'s|\s+is)?\s+in\s+charge|"
          r"customer\s+services?(?:\s+(?:agent|rep|representative|advis[eo]r|team|department))?)")
_PLATFORM = (r"(?:twitter|x|facebook|instagram|tiktok|reddit|linkedin|youtube|social\s+media|trustpilot|"
             r"the\s+internet|online|google(?!\s*(?:pay|wallet))|yelp|the\s+app\s+store|the\s+play\s+store)")
# Asking for a person, unless the words before turn it down ("don't need a human for this").
PERSON = re.compile(
    # "speak to a real person", "talk with one of your customer service agents", "speak to the fraud team"
    rf"\b(?:speak|talk|chat|get\s+through)\s+(?:to|with)\s+(?:a|an|some|your|the|one\s+of\s+your)?\s*"
    rf"(?:(?:real|actual|live|proper|senior|human|fraud|complaints?|support|accounts?|billing|disputes?|security|"
    rf"technical|another|other|different|qualified|customer)\s+){{0,2}}(?:{_STAFF}|team|department|desk)\b"
    # "is there a person I can talk to", "I need someone to speak with"
    rf"|\b{_STAFF}\s+(?:(?:i|we)\s+(?:can|could|may)\s+|to\s+)(?:speak|talk|chat)\s+(?:to|with)\b"
    # "could a customer service representative contact me", "can someone call me": not "someone called me"
    rf"|\b{_STAFF}\s+(?:to|could|can|should|please)\s+(?:please\s+)?"
    rf"(?:contact|call|ring|phone|get\s+in\s+touch\s+with)\s+me\b"
    rf"|\b(?:can|could)\s+{_STAFF}\s+(?:please\s+)?(?:contact|call|ring|phone|get\s+in\s+touch\s+with)\s+me\b"
    rf"|\b(?:reviewed|handled|looked\s+at|dealt\s+with|picked\s+up)\s+by\s+(?:a|an|one\s+of\s+your)?\s*"
    rf"(?:real\s+|actual\s+|human\s+)?{_STAFF}\b"
    r"|\b(?:get|give|want|need|find)\s+(?:me\s+)?(?:a|an|the|your|some)\s+(?:real\s+|actual\s+|live\s+)?"
    r"(?:manager|supervisor|human|person|representative|operator)\b"
    r"|\b(?:a|an|any|some)\s+(?:real\s+|actual\s+)?human\b(?!\s+error)"
    r"|\b(?:real|actual|live)\s+(?:person|human|people)\b|\b(?:human|live|real)\s+(?:agent|operator|representative)\b"
    r"|\bhuman\s+being\b|\b(?:call|ring|phone)\s+me\s+back\b|\bgive\s+me\s+a\s+(?:call|ring)\b|\bcall\s?backs?\b"
    r"|\bescalate\b|\b(?:put|transfer|connect|pass|forward|redirect|hand)\s+me\s+(?:through\s+|on\s+|over\s+)?"
    r"(?:to|with|onto)\b"
    # "could somebody from your disputes department get in touch with me"
    r"|\b(?:someone|somebody|a\s+person)\s+(?:from|in|on)\s+(?:your|the)\s+(?:\w+\s+){0,2}(?:team|department|desk)\s+"
    r"(?:to\s+|could\s+|can\s+|please\s+)?(?:contact|call|ring|phone|get\s+in\s+touch\s+with)\s+me\b"
    # What callers say to a phone menu: "agent", "representative, please", "operator operator".
    r"|^\W*(?:(?:an?\s+)?(?:agent|representative|operator|human|person|manager)\W*)+(?:please)?\W*$", re.I)
TURNED_DOWN = re.compile(r"\b(?:don'?t|do\s+not|doesn'?t|no\s+need\s+(?:for|to)|not|never|without)\W+(?:\w+\W+)?$"
                         # a question about the process: "do I have to speak to a representative to change my PIN?"
                         r"|\b(?:do|does|will|would|must|should)\s+(?:i|we|one)\s+(?:really\s+)?(?:need|have)\s+to\s+$",
                         re.I)
# Not wanting the machine: "I don't want to talk to a machine", "am I talking to a bot?", "no more bots".
MACHINE = re.compile(
    r"\b(?:speak|talk|chat)\w*\s+(?:to|with)\s+(?:a|an|the|this|some)\s+"
    r"(?:bot|robot|chat\s?bot|machine|computer|AI|automated\s+\w+|recording)\b"
    r"|\b(?:not|no|stop|enough|tired\s+of|hate|sick\s+of)\b[^.!?\n]{0,20}\b(?:chat\s?)?(?:ro)?bots?\b"
    r"|\b(?:chat\s?)?(?:ro)?bots?\b[^.!?\n]{0,15}\b(?:useless|stupid|not\s+help\w*|can'?t\s+help|doesn'?t\s+help)", re.I)
LEGAL = re.compile(
    # a lawyer asked for or asking for paperwork is not a threat: "for my solicitor", "my lawyer needs a copy"
    r"\b(?:(?<!for\smy\s)(?<!for\sthe\s)(?<!for\sour\s)(?<!for\sa\s)(?:lawyers?|solicitors?)"
    r"(?!\s+(?:needs?|wants?|requires?|requested|asked\s+for|has\s+asked\s+for|is\s+asking\s+for)\b)|"
    r"(?<!power\sof\s)attorneys?|"
    r"legal\s+(?:action|proceedings|advice|advisor|team|counsel|department|representation|claim)|"
    r"courts?|suing|lawsuits?|"
    # "sue", but not Sue, a name, in the middle of a sentence ("I sent £50 to my sister Sue")
    r"(?-i:sue|SUE)|(?<![a-z,]\s)(?-i:Sue)|class\s+action|bring\s+(?:a\s+)?claim|letter\s+before\s+action|"
    r"litigation|small\s+claims|ombudsman|law\s+firm|(?:proper|strong|good)\s+case\s+against|financial\s+conduct\s+authority|FCA|CFPB|consumer\s+financial\s+protection|"
    r"FTC|better\s+business\s+bureau|regulator|trading\s+standards|illegal|unlawful|GDPR|ICO|"
    r"data\s+protection\s+(?:act|law|request|complaint|officer)|subject\s+access\s+request|information\s+commissioner)\b",
    re.I)
# Legal threats that no topic explains away (unlike "court" or "solicitor" alone, as in "a printout
# for court"): the learned detector may not overrule these (see cue_reason).
LEGAL_ACTION = re.compile(
    r"\b(?:legal\s+(?:action|proceedings)|lawsuits?|small\s+claims|class\s+action|ombudsman|"
    r"(?:given|passed|handed|sent|forwarded)\s+(?:the\s+case|this|it|everything|the\s+matter)\s+(?:over\s+)?to\s+"
    r"(?:my|our|a)\s+(?:lawyers?|solicitors?|attorneys?)|"
    r"(?:report|reporting|escalate|escalating)\s+(?:this|you|it|the\s+bank)\s+to\s+the\s+"
    r"(?:financial\s+)?(?:regulator|ombudsman|fca|cfpb|ftc)|reserve\s+the\s+right\s+to\s+(?:take|report|pursue|seek)|"
    r"(?:take|taking|drag|dragging)\s+(?:you|this|it|the\s+bank)\s+to\s+court|see\s+you\s+in\s+court|"
    r"(?:my|our)\s+(?:lawyers?|solicitors?|attorneys?)\s+(?:will|'ll|is\s+going\s+to|are\s+going\s+to|shall))\b", re.I)
COMPLAINT = re.compile(
    r"\b(?:make|file|lodge|raise|submit|register|open|put\s+in|escalate)\s+(?:a\s+|an\s+|my\s+)?"
    r"(?:official\s+|formal\s+)?complaint\b"
    r"|\b(?:log|record|treat|register|take)\s+(?:this|it|that)\s+(?:down\s+)?as\s+(?:a|an)\s+(?:official\s+|formal\s+)?"
    r"complaint\b|\b(?:formal|official)\s+complaint\b|\bformally\s+complain\w*|\bcomplain\w*\s+formally\b"
    r"|\bcomplain(?:ing)?\s+to\s+(?:your|the|a)\s+(?:manager|supervisor|head\s+office)\b"
    r"|\bcomplaints\s+(?:team|department|procedure|process)\b", re.I)
# Going public: the press, TV and radio, reviews, social media, a video or a story of one's own.
_MEDIA = (r"(?:the\s+|a\s+|my\s+|our\s+|your\s+)?(?:(?:local|national|regional|daily)\s+)?"
          r"(?:press|media|papers?|newspapers?|news(?:papers?|\s+desk)?|tv|television|radio|journalists?|reporters?|"
          r"bbc|itv|channel\s+\w+(?:\s+news)?|watchdog|consumer\s+(?:pages?|programmes?|programs?|shows?|sections?|"
          r"segments?|champions?|affairs\s+\w+)|money\s*saving\s*expert|which\?)")
PUBLIC = re.compile(
    rf"\b(?:go(?:ing)?\s+to|went\s+to|contact(?:ing|ed)?|tell(?:ing)?|told|writ(?:e|ing|ten)\s+to|call(?:ing|ed)?|"
    rf"speak(?:ing)?\s+to|spoken\s+to|talk(?:ing|ed)?\s+to|(?:been|get|getting|got)\s+in\s+touch\s+with|"
    rf"pass(?:ing)?\s+(?:the|this|my)\s+story\s+to|tak(?:e|ing)\s+(?:this|it|my\s+story)\s+to|"
    rf"(?:send|forward|pass|hand)(?:s|ing|ed)?\s+(?:\w+\s+){{0,5}}?to)\s+{_MEDIA}\b"
    rf"|\b(?:post|tweet|put|share|write|blast|expose|shame)\w*\s+(?:this|it|you|about\s+(?:this|you|it)|"
    rf"the\s+whole\s+(?:story|thing)|everything|screenshots?(?:\s+of\s+(?:this|the|our|these)\s+\w+)?)(?:\s+guys)?\s+"
    rf"(?:on|in|all\s+over)\s+(?:all\s+)?{_PLATFORM}\b"
    # "the local paper would love this story"
    rf"|\b{_MEDIA}\s+(?:would|will|'d|'ll)\s+(?:love|be\s+(?:very\s+)?interested\s+in)\s+(?:this|to\s+hear)\b"
    rf"|\b(?:post|posting|share|sharing|put|putting|write|writing)\s+(?:about\s+)?(?:it\s+|this\s+)?(?:in|on)\s+(?:all\s+)?(?:the\s+)?"
    rf"(?:facebook|whatsapp|reddit|local|neighbourhood|neighborhood|community|parents'?|students'?|\w+)\s+"
    rf"(?:groups?|forums?|pages?|subreddits?)\b"
    r"|\b(?:going\s+to|gonna|will|'ll)\s+hear\s+about\s+(?:this|it)\b"
    r"|\b(?:bad|negative|one[- ]star|1[- ]star|terrible|scathing)\s+reviews?\b|\btrustpilot\b"
    r"|\b(?:app\s+store|play\s+store)\s+review"
    # a story or video of one's own: "write an article about this bank", "make a video about it", "on camera"
    r"|\b(?:write|writing|publish|do|doing|make|making|film|filming)\s+(?:an?\s+)?(?:article|story|column|piece|"
    r"blog(?:\s+post)?|thread|video|vlog|tiktok|post)\s+(?:about|on)\s+(?:this|it|you|your|the\s+bank|kestrel)"
    r"|\bwrite\s+about\s+(?:this|it|you)\s+in\s+print\b|\bon\s+camera\b|\bgo(?:ing)?\s+viral\b"
    # "I'm writing the whole thing up", from someone who says they write for a blog or a paper
    r"|\bwrit(?:e|ing)\s+(?:up\s+(?:this|the\s+whole\s+(?:thing|story)|everything)|(?:this|it|the\s+whole\s+(?:thing|story))\s+up)\b"
    r"|\bwrite\s+for\s+(?:a|an|the)\s+(?:\w+\s+)?(?:blog|paper|newspaper|magazine|website|column|podcast)\b"
    r"|\b(?:warn|tell)\s+(?:everyone|everybody|people|others|all\s+my\s+\w+)\s+(?:not\s+to|to\s+avoid|how|about\s+(?:you|this))"
    r"|\b(?:my|our|i'?ve\s+got|i\s+have|with)\s+(?:over\s+|nearly\s+|almost\s+|about\s+)?(?:\d[\d,.]*k?|thousands\s+of|\w+\s+thousand)\s+"
    r"(?:followers|subscribers|members|readers)\b", re.I)
# Anger that needs no second opinion: abuse, swearing, "fed up", "worst bank". Not theft ("someone
# stole my card" is a report, not a temper).
FURY = re.compile(
    r"\b(?:furious|fuming|livid|outraged|outrageous|disgusted|disgusting|disgrace(?:ful)?|appalling|unacceptable|"
    r"ridiculous|pathetic|incompetent|useless|garbage|rubbish|worst|scam(?:mers?)?|crooks|"
    r"(?:terrible|awful|horrible|shocking|poor)\s+(?:service|bank|company|app|experience)|"
    r"(?:are|you)\s+(?:you\s+)?kidding(?:\s+me)?|or\s+i(?:'m|\s+am|\s+will|'ll)\s+(?:be\s+)?(?:leaving|leave|clos\w+)|"
    r"you\s+(?:stole|robbed|thieves|crooks|idiots|clowns)|(?<!a\sbit\s)(?<!a\slittle\s)(?<!slightly\s)fed\s+up|sick\s+(?:and\s+tired\s+)?of|had\s+enough\s+of|hate\s+(?:you|this|your)|"
    r"(?:so|very|really|extremely|i\s+am|i'm)\s+angry|what\s+the\s+(?:hell|heck|fuck)|wtf|f+u+c+k\w*|shit\w*|"
    r"(?:no\s+one|nobody|no\s+body)\s+(?:cares|helps|is\s+helping|answers|replies|responds|gets\s+back)|"
    r"(?:you|you're|you\s+are|are\s+you)\s+(?:\w+\s+)?(?:stupid|idiots?|morons?|clowns?|muppets?|dumb|thick)|"
    r"thanks\s+for\s+nothing|had\s+it\s+(?:up\s+to\s+here|with\s+(?:you|this|your))|screw\s+(?:you|this|your)|"
    r"what(?:'s|\s+is)\s+wrong\s+with\s+(?:you|your\s+(?:bank|company|people|staff))|"
    r"bunch\s+of\s+(?:idiots|clowns|morons|amateurs|muppets|crooks|thieves)|clown\s+show|shambles|"
    r"wast(?:e|ing)\s+(?:of\s+)?my\s+time|fix\s+(?:it|this)\W+now|"
    r"f[*#@!]{2,}\w*|"
    r"bullshit|crap|damn|bloody|(?:is|are|what)\s+a\s+(?:\S+\s+)?joke)(?!\w)", re.I)
# Words of displeasure that count together with a negative score (frustration with a problem can
# still be answered; "annoyed, third time I ask!!" cannot).
ANGER = re.compile(  # not when played down: "a little frustrated that the app logs me out"
    r"\b(?<!a\slittle\s)(?<!a\sbit\s)(?<!slightly\s)(?<!somewhat\s)"
    r"(?:angry|annoyed|annoying|frustrat\w*|terrible|horrible|awful|shocking|unbelievable|ignor(?:e|ed|es|ing)\s+me|"
    r"never\s+again|joke|"
    r"(?:very|really|so|extremely|seriously|deeply|bitterly|hugely|massively|totally)\s+"
    r"(?:disappointed|dissatisfied|upset|unhappy|let\s+down))\b|!{2,}|\?{2,}", re.I)
# Words VADER reads as negative that, in a bank's inbox, name the customer's problem rather than their
# mood ("my card was stolen" scores -0.6): neutral when judging anger, so ordinary reports are answered.
PROBLEM_WORDS = (
    "wrong", "stolen", "steal", "lost", "charged", "charges", "failed", "fail", "failing", "problem", "problems",
    "error", "rejected", "rejecting", "mistake", "mistakenly", "accidentally", "no", "cancel", "cancelled",
    "dispute", "broken", "broke", "damaged", "trouble", "blocked", "block", "pay", "denied", "stop",
    "disappeared", "disappear", "fraud", "fraudulent", "hacked", "victim", "missing", "unsuccessful", "stuck",
    "delay", "difficulty", "unsupported", "messed", "declined", "decline", "incorrect", "overcharged", "defect",
    "worried", "confused")


REASONS = {"person": "asks for a person", "legal": "legal or regulatory threat",
           "complaint": "wants to make a complaint", "public": "threatens to go public: press, reviews or social media",
           "angry": "angry customer"}


HOSTILE_REASONS = tuple(REASONS[k] for k in ("angry", "complaint", "public", "legal"))


# Reviews named as a topic ("I read a bad review of the app") rather than threatened ("I'm leaving
# 1-star reviews"): only these the learned detector may overrule.
_REVIEW = re.compile(r"(?:bad|negative|one[- ]star|1[- ]star|terrible|scathing)\s+reviews?|trustpilot|"
                     r"(?:app|play)\s+store\s+review", re.I)
_REVIEW_THREAT = re.compile(r"\b(?:leav|writ|post|giv|put|drop)\w*\s+(?:\w+\s+){0,4}$", re.I)


def _threatens(text: str, match: re.Match) -> bool:
    """Whether a going-public cue is a threat: anything but a review named, or a review about to be left."""
    return not _REVIEW.fullmatch(match.group()) or bool(_REVIEW_THREAT.search(text[max(0, match.start() - 40):match.start()]))


def given_reason(mood: Sentiment, reason: str | None) -> Sentiment:
    """The mood, knowing why the message is handed over: anger, a complaint, a legal threat or a threat
    to go public is negative whatever VADER scored it. VADER misses sarcasm ("Oh brilliant, another
    'technical issue'" +0.84) and reads "this is a joke" at +0.30 and "Thanks for nothing" at +0.44: of
    115 angry messages in data/handover/, it called 44 neutral or positive. The score stays VADER's."""
    if reason is not None and reason.startswith(HOSTILE_REASONS) and mood.label != "negative":
        return Sentiment("negative", mood.score, "hand-over")
    return mood


def handover_reason(text: str, mood: Sentiment, learned: dict[str, float] | None = None) -> str | None:
    """Why a person must take this message over, or None. ``learned``: the hand-over model's
    probabilities for the message (``HandoverHead.per_message``), where the intent model has one: it can
    overrule a cue (not a firm one, see ``cue_reason``), and catch what no cue names."""
    cue, firm = cue_reason(text, mood) or (None, False)
    if learned is None:
        return cue
    if cue is not None and (learned["none"] < GATE or firm):
        return cue
    not_ordinary = 1 - learned["none"]
    if not_ordinary >= THRESHOLD:
        label = max(REASONS, key=learned.get)
        return f"{REASONS[label]} (hand-over model, p {not_ordinary:.2f})"
    return None


def _temper(text: str) -> float:
    """The most negative sentence's VADER score with the problem's own words neutral: a sentence, not the
    whole message, since VADER's compound score grows with every mildly negative sentence and a long, calm
    email of several would read as furious."""
    return min((compound(s.text, without=PROBLEM_WORDS) for s in split(text)), default=0.0)


def cue_reason(text: str, mood: Sentiment) -> tuple[str, bool] | None:
    """The reason the explicit cues give, the gravest first, and whether it is firm, or None. A firm cue
    stands whatever the learned detector says: a request for a person, a threat of legal action, or
    explicit fury ("furious", "you idiots", "I've had it with you"), which the detector, reading meaning
    rather than words, overruled in terse messages ("Fix it. Now.", "what a clown show"). Not a scam
    asked about ("is this text a scam?"), nor words that name a topic ("a printout for court")."""
    if LEGAL.search(text):
        return REASONS["legal"], LEGAL_ACTION.search(text) is not None
    publics = list(PUBLIC.finditer(text))
    if publics:
        return REASONS["public"], any(_threatens(text, m) for m in publics)
    if COMPLAINT.search(text):
        return REASONS["complaint"], False
    if MACHINE.search(text) or any(not TURNED_DOWN.search(text[:m.start()]) for m in PERSON.finditer(text)):
        return REASONS["person"], True
    furies = [m.group() for m in FURY.finditer(text)]
    if furies:
        return (f"angry customer ('{furies[0]}', sentiment {mood.score:+.2f})",
                any(not re.fullmatch(r"scam\w*", fury, re.I) for fury in furies))
    temper = _temper(text) if mood.score < NEGATIVE else 0
    if temper <= ANGRY or (temper < NEGATIVE and ANGER.search(text)):
        return f"angry customer (sentiment {mood.score:+.2f}, {temper:+.2f} without the problem's own words)", False
    return None
