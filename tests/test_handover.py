"""The learned hand-over detector: fitting, storage, how it combines with the cues, and the shipped one."""
import json
import shutil

import numpy as np
import pytest

from agent.handover import ANGRY, GATE, LABELS, PROBLEM_WORDS, THRESHOLD, HandoverHead, handover_reason
from agent.intent import IntentHead
from agent.labelled import read_examples
from agent.sentiment import compound, sentiment
from agent.types import AgentError, Message
from conftest import REPO
from finetune import handover as train_handover

ORDINARY = dict.fromkeys(LABELS, 0.0) | {"none": 0.95}


def learned(**probabilities) -> dict:
    rest = (1 - sum(probabilities.values())) / (len(LABELS) - len(probabilities))
    return {label: probabilities.get(label, rest) for label in LABELS}


def test_fit_and_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(len(LABELS), 16)).astype(np.float32)
    labels = [LABELS[i % len(LABELS)] for i in range(300)]
    x = (centres[[LABELS.index(label) for label in labels]] + rng.normal(scale=0.3, size=(300, 16))).astype(np.float32)
    head = HandoverHead.fit(x, labels)
    assert (head.probabilities(x).argmax(axis=1) == [LABELS.index(label) for label in labels]).mean() > 0.95
    head.save(tmp_path / "h.safetensors")
    loaded = HandoverHead.load(tmp_path / "h.safetensors")
    assert np.allclose(loaded.probabilities(x), head.probabilities(x), atol=1e-6)


def test_a_label_without_examples_is_never_predicted():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 8)).astype(np.float32)
    head = HandoverHead.fit(x, ["none", "person"] * 20)
    assert head.probabilities(x)[:, LABELS.index("public")].max() < 1e-6


def test_foreign_file_is_a_clear_error(tmp_path):
    from safetensors.numpy import save_file

    save_file({"weight": np.zeros((2, 4), np.float32), "bias": np.zeros(2, np.float32)}, str(tmp_path / "h"),
              metadata={"labels": "none,other"})
    with pytest.raises(AgentError, match="hand-over labels"):
        HandoverHead.load(tmp_path / "h")


def test_cues_and_model_combine():
    mention = "I need a printout of my transactions for court"
    mood = sentiment(mention)
    assert handover_reason(mention, mood) == "legal or regulatory threat"  # the cues alone, as for a model without one
    assert handover_reason(mention, mood, learned(none=GATE - 0.01)) == "legal or regulatory threat"
    assert handover_reason(mention, mood, learned(none=GATE)) is None  # the model is sure it is ordinary
    plain = "could your team leader give me a bell this afternoon"
    assert handover_reason(plain, sentiment(plain)) is None  # no cue names it
    sure, unsure = (1 - THRESHOLD) / 2, (1 - THRESHOLD) * 1.5  # "none" just inside and just outside the threshold
    assert handover_reason(plain, sentiment(plain), learned(none=sure, person=1 - sure)).startswith(
        f"asks for a person (hand-over model, p {1 - sure:.2f}")
    assert handover_reason(plain, sentiment(plain), learned(none=unsure, person=1 - unsure)) is None
    # surely not ordinary, though split between two reasons: handed over, for the more probable one
    assert handover_reason(plain, sentiment(plain), learned(none=0.01, person=0.6, angry=0.39)).startswith(
        "asks for a person (hand-over model, p 0.99")
    assert handover_reason(plain, sentiment(plain), ORDINARY) is None


@pytest.mark.parametrize("text, reason", [
    ("can someone call me back about my pin", "asks for a person"),
    ("I want to speak to a real person", "asks for a person"),
    ("I'm taking you to small claims court over this fee", "legal or regulatory threat"),
    ("My solicitor will hear about the ATM withdrawals I never made", "legal or regulatory threat"),
    ("Fix it. Now.", "angry customer ('Fix it. Now'"),
    ("i have had it with you. the card never arrived", "angry customer ('had it with you'"),
])
def test_model_does_not_overrule_a_request_for_a_person_a_legal_threat_or_fury(text, reason):
    # Asking for a person is never ordinary, however the model reads the rest; nor is a threat to sue or abuse.
    assert handover_reason(text, sentiment(text), learned(none=0.99)).startswith(reason)


@pytest.mark.parametrize("text", [
    "If it is not closed this week I'll be sending the whole email chain to the consumer section of my local paper.",
    "I've got 40k followers on TikTok and I'm about to post how you handled this.",
    "I write for a consumer blog and if this isn't sorted today I'm writing up the whole thing",
    "I'm going to write about it on the wedding forums so people know how hard you make it",
    "posting screenshots of this chat on twitter rn",
    "The local paper would love this story: a bank that locks a pensioner out of her own savings.",
])
def test_going_public_is_read_however_it_is_put(text):
    assert handover_reason(text, sentiment(text)) == "threatens to go public: press, reviews or social media"


@pytest.mark.parametrize("text", [
    "I want to put it on google pay on my new phone",
    "I sent the receipt to the merchant and forwarded their reply to you",
])
def test_a_wallet_or_an_errand_is_not_going_public(text):
    assert handover_reason(text, sentiment(text)) is None


def test_model_overrules_a_scam_asked_about():
    text = "I got a text asking me to call a number about a suspicious payment. Is that a scam?"
    assert handover_reason(text, sentiment(text)).startswith("angry customer ('scam'")
    assert handover_reason(text, sentiment(text), learned(none=0.99)) is None


@pytest.fixture(scope="module")
def shipped_handover(agent):
    classifier = agent.classifier
    assert classifier.head.handover is not None
    return classifier


def hand_overs(classifier, path):
    examples = read_examples(path)
    predictions = classifier.classify([e.text for e in examples])
    return [(e.intent, handover_reason(e.text, sentiment(e.text), p.handover)) for e, p in zip(examples, predictions)]


@pytest.mark.parametrize("name, caught, ordinary_ceiling", [
    # 166 hand-over messages and 90 ordinary requests: 155 and 1 handed over by the shipped model.
    ("dev.jsonl", 0.9, 0.15),
    # 110 and 60 by a writer who had seen neither the cues nor the detector: 100 and 1 handed over by the
    # shipped model, whose detector alone hands over only at p 0.98 of not ordinary (docs/experiments/handover.md).
    ("independent.jsonl", 0.9, 0.05),
    # 85 and 35 (a third each call transcripts, emails and chats) by another writer who had seen none of
    # this, scored once and not tuned on: 75 and 4 with the shipped model ("lol furious at myself for forgetting my password",
    # "my bf is a lawyer and he told me to ask ...").
    ("independent_2.jsonl", 0.85, 0.2),
])
def test_shipped_detector_on_hand_over_sets(shipped_handover, name, caught, ordinary_ceiling):
    results = hand_overs(shipped_handover, REPO / "data/handover" / name)
    reasons = [r for label, r in results if label != "none"]
    ordinary = [r for label, r in results if label == "none"]
    assert sum(r is not None for r in reasons) >= caught * len(reasons)
    assert sum(r is not None for r in ordinary) <= ordinary_ceiling * len(ordinary)


def test_shipped_detector_keeps_banking_questions(shipped_handover):
    """The held-out Banking77 queries are ordinary requests: almost none is handed over."""
    results = hand_overs(shipped_handover, REPO / "data/heldout/intent.jsonl")
    assert sum(r is not None for _, r in results) <= 0.01 * len(results)


def test_agent_hands_over_what_no_cue_names(agent):
    reply = agent.handle(Message("Sir kindly transfer my chat to any executive, I am not getting solution from this "
                                 "automated reply.", "chat"))
    assert reply.escalate and reply.reason.startswith("asks for a person (hand-over model")


def test_handover_cli_adds_a_detector_to_a_model(tmp_path, settings, capsys):
    model = tmp_path / "intent"
    shutil.copytree(REPO / "agent/data/intent", model)
    (model / "handover.safetensors").unlink()
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps(config | {"handover": None}))  # as trained without one
    assert IntentHead.load(model).handover is None
    ordinary = tmp_path / "ordinary.jsonl"
    ordinary.write_text("".join(json.dumps({"text": e.text, "intent": e.intent}) + "\n"
                                for e in read_examples(REPO / "data/heldout/intent.jsonl")[:300]))
    argv = ["--model", str(model), "--ordinary", str(ordinary), "--validation-fraction", "0"]
    assert train_handover.main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    # each ordinary request also read inside a message built around it (--messages 1.0, the default)
    assert summary["ordinary"] == 600 and summary["examples"]["person"] > 50
    head = IntentHead.load(model)
    assert head.handover is not None and head.adapter == str(model / "adapter")


def test_handover_cli_rejects_unknown_labels(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "hello", "label": "grumpy"}) + "\n")
    assert train_handover.main(["--train", str(bad)]) == 1
    assert "unknown hand-over labels grumpy" in capsys.readouterr().err


def test_a_long_calm_email_is_not_angry_for_its_length():
    """Anger is read from the most negative sentence: several mildly negative sentences (each above
    ANGRY alone) do not add up to fury, while one furious sentence in a calm email still does."""
    calm = ("I paid for a hotel in Lisbon and the rate was poor. The charge was also later than I expected. "
            "The app was slow and a bit confusing. Why did this payment get such a poor conversion rate?")
    assert compound(calm, without=PROBLEM_WORDS) <= ANGRY  # the whole message reads as furious to VADER
    assert handover_reason(calm, sentiment(calm)) is None
    furious = "I paid for a hotel in Lisbon. Sad, hurt and miserable, I feel cheated and betrayed."  # no fury cue
    assert handover_reason(furious, sentiment(furious)).startswith("angry customer (sentiment")
