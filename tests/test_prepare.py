"""finetune.prepare: masking, label checks, duplicates, held-out leaks, stratified split, report."""
import json

import pytest

from conftest import REPO
from finetune import prepare

import random

_WORDS = ("apple bridge candle dragon engine forest guitar harbor island jungle kettle ladder meadow needle orchard "
          "pepper quarry river saddle tunnel umbrella valley wagon yacht zipper anchor basket cactus dolphin "
          "feather glacier hammer igloo jacket lantern magnet nutmeg oyster parrot quilt rocket sponge tiger").split()
_rng = random.Random(7)
# Base data whose texts share little, so that only the planted duplicates are duplicates.
BASE = [(f"how do I {verb} my card number {n}" if n == 3 and verb == "activate" else
         " ".join(_rng.sample(_WORDS, 6)) + f" {verb}", intent) for n in range(12)
        for verb, intent in (("activate", "activate_my_card"), ("freeze", "lost_or_stolen_card"))]
BASE += [(" ".join(_rng.sample(_WORDS, 6)) + " rate", "exchange_rate") for _ in range(6)]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n", encoding="utf-8")
    return path


def record(text, intent, confidence=0.95, escalate=False, corrected=None):
    return {"channel": "call", "text": text, "intent": intent, "confidence": confidence, "reply": "Hi Anna, done",
            "escalate": escalate, "corrected_intent": corrected}


@pytest.fixture
def files(tmp_path):
    base = tmp_path / "base.csv"
    base.write_text("text,category\n" + "".join(f'"{t}",{i}\n' for t, i in BASE), encoding="utf-8")
    heldout = write_jsonl(tmp_path / "heldout.jsonl", [{"text": "What is the rate for yen today?", "intent": "exchange_rate"}])
    travel = [r["text"] for r in read(REPO / "data" / "examples" / "travel_notification-train.jsonl")[:10]]
    assert travel[0] == "I'm going to Spain next week, will my card work there?"
    new = write_jsonl(tmp_path / "new.jsonl", [
        *[{"text": t, "intent": "travel_notification"} for t in travel],
        {"text": "Hi, my name is Anna Kowalski, card 4111 1111 1111 1111, mail anna@kowalski.example",
         "intent": "travel_notification"},
        {"text": "I'm going to Spain next week, will my card work there??", "intent": "travel_notification"},  # dup
        {"text": "I'm going to Spain next week - will my card work over there?", "intent": "travel_notification"},
        {"text": "what is the rate for YEN today", "intent": "exchange_rate"},  # the held-out example again
        {"text": "how do I activate my card number 3", "intent": "lost_or_stolen_card"},  # relabels a base row
        {"text": "", "intent": "activate_my_card"},
        {"text": "no label here"},
        {"text": "bad label", "intent": "two\nlines"},
        record("Thanks,\nJohn Smith\nI'll be in Italy from 3 March, order ZX-99812, £1,250.00",
               "card_arrival", corrected="travel_notification"),
        record("activate it please, I got it yesterday", "activate_my_card", confidence=0.97),
        record("maybe activate?", "activate_my_card", confidence=0.5),
        record("I want a person now", "activate_my_card", escalate=True),
        {"channel": "call", "text": "a record without its intent", "confidence": 0.9, "reply": "x"},
    ])
    return base, heldout, new


def run(tmp_path, base, heldout, new, *extra):
    out = tmp_path / "out"
    code = prepare.main(["--new", str(new), "--out", str(out), "--base-data", str(base), "--heldout", str(heldout),
                         "--near", "0.8", *extra])
    return code, out


def read(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_prepare_end_to_end(tmp_path, files, capsys):
    code, out = run(tmp_path, *files, "--allow-new-intents")
    assert code == 0
    train, validation = read(out / "train.jsonl"), read(out / "validation.jsonl")
    report = json.loads((out / "report.json").read_text())
    everything = (out / "train.jsonl").read_text() + (out / "validation.jsonl").read_text()
    for secret in ("Anna", "Kowalski", "4111", "anna@", "John", "Smith"):
        assert secret not in everything and secret not in json.dumps(report)
    assert "order ZX-99812, £1,250.00" in everything and "3 March" in everything  # not PII: kept
    assert all(set(r) == {"text", "intent"} for r in train + validation)
    texts = [r["text"] for r in train + validation]
    assert len(texts) == len(set(texts))
    assert not any("yen today" in t.lower() for t in texts)  # the held-out example never trains
    labels = {r["text"]: r["intent"] for r in train + validation}
    assert labels["how do I activate my card number 3"] == "lost_or_stolen_card"  # new data wins a conflict
    assert labels["activate it please, I got it yesterday"] == "activate_my_card"  # sure prediction kept
    assert "maybe activate?" not in labels and "I want a person now" not in labels
    # Stratified: every intent in training; intents with five or more examples also in validation.
    assert {r["intent"] for r in validation} == {"activate_my_card", "lost_or_stolen_card", "exchange_rate",
                                                 "travel_notification"}
    assert report["new_intents"] == {"travel_notification": {"train": 11, "validation": 1}}
    assert report["masked"]["NAME"] == 3 and report["masked"]["CARD_NUMBER"] == 1
    dropped = report["dropped"]["by_reason"]
    assert dropped["duplicate"] == 1 and dropped["near duplicate"] == 1
    assert dropped["duplicate of a held-out example (kept out of training)"] == 1
    assert dropped["duplicate with a different intent"] == 1  # the base row the new label replaced
    assert dropped["unconfirmed prediction: escalated"] == 1
    assert dropped["unconfirmed prediction: confidence below 0.9"] == 1
    assert dropped["empty text"] == 1 and dropped["no intent label"] == 1 and dropped["unreadable row"] == 1
    assert dropped["unreadable record"] == 1 and dropped["invalid intent name (a word of letters, digits, _ - . ?)"] == 1
    assert report["train"] + report["validation"] == len(texts)
    assert report["lengths"]["train"]["words"]["max"] >= report["lengths"]["train"]["words"]["p50"]
    assert json.loads(capsys.readouterr().out)["new_intents"] == ["travel_notification"]


def test_unknown_intents_are_reported_not_added(tmp_path, files):
    code, out = run(tmp_path, *files)
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["unknown_intents"] == {"travel_notification": 14} and report["new_intents"] == {}
    assert "travel_notification" not in (out / "train.jsonl").read_text()


def test_split_keeps_tiny_intents_in_training():
    items = [prepare.Candidate(f"t{i}", "big", "x", False) for i in range(20)] + [
        prepare.Candidate("lonely", "tiny", "x", True), prepare.Candidate("pair 1", "two", "x", True),
        prepare.Candidate("pair 2", "two", "x", True)]
    train, validation = prepare.split(items, 0.1, seed=13)
    assert {c.intent for c in train} == {"big", "tiny", "two"} and [c.intent for c in validation] == ["big"] * 2
    assert prepare.split(items, 0.1, seed=13) == (train, validation)  # fixed seed: same split


def test_errors_are_one_line(tmp_path, capsys):
    assert prepare.main(["--new", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")]) == 1
    assert capsys.readouterr().err.strip() == f"finetune.prepare: error: training data not found: {tmp_path / 'missing.jsonl'}"
