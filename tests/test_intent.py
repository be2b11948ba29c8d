import json
import shutil

import numpy as np
import pytest

from agent.intent import OUT_OF_SCOPE, IntentClassifier, IntentHead
from agent.labelled import read_examples
from agent.types import AgentError
from conftest import REPO
from finetune import calibration
from finetune import intent as train_intent
from finetune.intent_data import Drawn, Embedded

# Paraphrases written for this test (not from the training data), one per intent checked.
UNSEEN = {
    "My new card never showed up in the post, it has been ages": "card_arrival",
    "I lost my card on the train this morning": "lost_or_stolen_card",
    "I can see the same coffee shop payment taken from my account two times": "transaction_charged_twice",
    "The cash machine kept my card and didn't give it back": "card_swallowed",
    "I'd like to close my account with you for good": "terminate_account",
    "How do I set up Apple Pay on my iPhone?": "apple_pay_or_google_pay",
}


def embedded(embeddings, labels, texts) -> Embedded:
    """One-part texts with their embeddings, as finetune.calibration takes them."""
    return Embedded([Drawn.of(t, int(y)) for t, y in zip(texts, labels)], embeddings,
                    [np.zeros((0, embeddings.shape[1]), np.float32) for _ in texts])


@pytest.fixture(scope="module")
def classifier(agent):
    return agent.classifier


def test_unseen_paraphrases(classifier):
    predicted = [top[0].intent for top in classifier.predict(list(UNSEEN))]
    assert predicted == list(UNSEEN.values())


def test_theft_wording(classifier):
    top = classifier.predict(["Someone stole my purse and my bank card was in it"])[0][0]
    assert top.intent == "lost_or_stolen_card"


def test_probabilities_are_calibrated_distributions(classifier):
    texts = ["where is my card", "hello"]
    probs = classifier.head.probabilities(classifier.encoder.encode(texts), texts)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    top = classifier.predict(["where is my card"], k=3)[0]
    assert len(top) == 3 and top[0].probability >= top[1].probability >= top[2].probability


def test_shipped_artefact_is_small_and_records_honest_metrics():
    model = REPO / "agent/data/intent"
    metrics = json.loads((model / "metrics.json").read_text())
    v = metrics["validation"]
    assert v["accuracy"] >= 0.93 and len(v["per_intent"]) == 77
    # every escalation (thresholds and hand-overs) costs at most 1.5 points of correct answers on one-line queries
    assert v["correct_and_answered"] >= v["accuracy"] - 0.015
    assert metrics["out_of_scope"]["escalated"] >= 0.85
    # the lexical model's vocabulary includes the words of the whole messages it was fitted on (3.4 MB of it)
    assert sum(f.stat().st_size for f in model.rglob("*") if f.is_file()) < 8_000_000


def test_escalation_budget_is_the_thresholds_and_leaves_hand_overs_out():
    """The two thresholds escalate at most the budget of correctly answered messages; what the customer's
    words hand over (a person asked for, anger) is not taken off it, since on messages built like real
    ones the detector's own mistakes would leave the thresholds nothing."""
    from agent.intent import OutOfScope

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, size=400)
    weight = rng.normal(size=(4, 8)).astype(np.float32)
    embeddings = (weight[labels] + rng.normal(scale=0.6, size=(400, 8))).astype(np.float32)
    head = IntentHead(["a", "b", "c", "d"], weight, np.zeros(4, np.float32), 1.0, 0.0, "enc", {},
                      oos=OutOfScope.fit(embeddings, labels))
    texts = ["I want to speak to a real person" if i % 10 == 0 else "where is my card" for i in range(400)]
    data = embedded(embeddings, labels, texts)
    calibration.fit_thresholds(head, data, budget=0.2)
    correct = head.probabilities(embeddings).argmax(axis=1) == labels
    handed = calibration.handed_over(head, data)[correct].mean()
    by_classifier = calibration.escalations(head, data)[correct].mean()
    overall = (calibration.escalations(head, data) | calibration.handed_over(head, data))[correct].mean()
    assert 0.08 <= handed <= 0.12 and 0.1 <= by_classifier <= 0.2 + 1e-9 and overall <= 0.2 + handed + 1e-9
    assert calibration.evaluate(head, data, head.labels)["correct_and_answered"] >= correct.mean() - overall - 1e-9


def test_thresholds_can_keep_the_distance_alone():
    """``standardise=False`` (bench/intent.py's comparison) leaves a head without a scale scoring by the
    distance, its threshold a quantile of the distances; the default standardises first."""
    from agent.intent import OutOfScope

    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, size=300)
    weight = rng.normal(size=(3, 6)).astype(np.float32)
    embeddings = (weight[labels] + rng.normal(scale=0.5, size=(300, 6))).astype(np.float32)
    texts = ["where is my card"] * 300
    heads = [IntentHead(["a", "b", "c"], weight, np.zeros(3, np.float32), 1.0, 0.0, "enc", {},
                        oos=OutOfScope.fit(embeddings, labels)) for _ in range(2)]
    calibration.fit_thresholds(heads[0], embedded(embeddings, labels, texts), budget=0.1, standardise=False)
    calibration.fit_thresholds(heads[1], embedded(embeddings, labels, texts), budget=0.1)
    assert heads[0].oos.scale is None and heads[1].oos.scale is not None
    assert heads[0].oos.threshold >= np.quantile(heads[0].oos.distance(embeddings), 0.9)  # a distance, not a z-sum
    assert heads[1].oos.threshold < 10 < heads[0].oos.threshold
    assert heads[0].threshold == heads[1].threshold  # the confidence threshold does not depend on it


@pytest.mark.parametrize("standardised", [True, False])
def test_head_round_trip_keeps_predictions(tmp_path, standardised):
    """Probabilities and out-of-scope scores survive saving; a model saved without the out-of-scope
    standardisation (as before it existed) still scores by the distance alone."""
    from agent.intent import OutOfScope

    rng = np.random.default_rng(0)
    weight = np.asfortranarray(rng.normal(size=(3, 8)).astype(np.float32))  # sklearn's coef_ layout
    train = rng.normal(size=(60, 8)).astype(np.float32)
    head = IntentHead(["a", "b", "c"], weight, np.zeros(3, np.float32), 1.5, 0.4, "enc", {},
                      oos=OutOfScope.fit(train, np.arange(60) % 3))
    head.oos.threshold = 2.5
    if standardised:
        head.oos.fit_scale(train, head.calibrated_logits(train))
    head.save(tmp_path)
    loaded = IntentHead.load(tmp_path)
    x = rng.normal(size=(5, 8)).astype(np.float32)
    assert np.allclose(loaded.probabilities(x), head.probabilities(x), atol=1e-6)
    assert np.allclose(loaded.out_of_scope_scores(x), head.out_of_scope_scores(x), rtol=1e-5)
    assert (loaded.oos.scale is None) == (not standardised) and loaded.oos.threshold == 2.5
    if not standardised:
        assert np.array_equal(loaded.out_of_scope_scores(x), loaded.oos.distance(x))


def test_missing_or_foreign_artefact_is_a_clear_error(tmp_path):
    with pytest.raises(AgentError, match="no intent model in"):
        IntentHead.load(tmp_path)
    (tmp_path / "config.json").write_text('{"format": "other"}')
    (tmp_path / "head.safetensors").write_bytes(b"")
    with pytest.raises(AgentError, match="is not a support-agent-intent/1 model"):
        IntentHead.load(tmp_path)


KEEP = ["card_arrival", "exchange_rate", "pin_blocked", "terminate_account", "cash_withdrawal_charge"]
PER_INTENT = 70  # enough for the training paths to learn five intents, in well under a minute each


@pytest.fixture(scope="module")
def small_train(tmp_path_factory):
    """A small slice of Banking77 (5 intents, PER_INTENT queries each), as JSONL."""
    import csv

    rows = list(csv.DictReader(open(REPO / "data/banking77/train.csv", encoding="utf-8")))
    path = tmp_path_factory.mktemp("data") / "small.jsonl"
    with open(path, "w") as f:
        for intent in KEEP:
            for r in [r for r in rows if r["category"] == intent][:PER_INTENT]:
                f.write(json.dumps({"text": r["text"], "intent": r["category"]}) + "\n")
    return path


@pytest.mark.parametrize("method", ["head", "lora"])
def test_training_script_writes_model_and_reports(tmp_path, small_train, method):
    """finetune.intent end to end, the LoRA path through the Hugging Face Trainer for one epoch (with the
    lexical model and the hand-over detector), the head path without them (tests/test_models.py trains
    head runs with a detector)."""
    out = tmp_path / "model"
    written, near = tmp_path / "written.jsonl", tmp_path / "near.txt"
    written.write_text("".join(json.dumps({"text": f"My card has not come. Also, what is the rate for {c}?", "kind":
                                           "two_requests", "requests": [
                                               {"intent": "card_arrival", "sentence": "My card has not come."},
                                               {"intent": "exchange_rate", "sentence": f"Also, what is the rate for {c}?"}]}) + "\n"
                               for c in ("euros", "dollars", "yen", "francs")), encoding="utf-8")  # the fourth is held out
    near.write_text("How do I renew my library card?\nMy gym fob stopped working\n", encoding="utf-8")
    argv = ["--train", str(small_train), "--out", str(out), "--validation-fraction", "0.2", "--method", method,
            "--epochs", "1", "--written", str(written), "--written-repeat", "2", "--oos-train-only", str(near)
            ] + (["--no-lexical", "--no-handover"] if method == "head" else [])
    assert train_intent.main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    if method == "lora":  # three written messages twice, and the two requests as they are
        assert metrics["fine_tune"]["extras_read_per_epoch"] == 3 * 2 + 2
    assert metrics["validation"]["accuracy"] > 0.9 and metrics["out_of_scope"]["escalated"] > 0.5
    assert (out / "report.txt").read_text().count("\n") > 5 and (out / "confusion.png").stat().st_size > 1000
    assert (out / "adapter" / "adapter_model.safetensors").is_file() == (method == "lora")
    assert not (out / "adapter" / "README.md").exists()  # peft's blank model card names this machine's paths
    assert (out / "lexical.safetensors").is_file() == ("lexical" in metrics) == (method == "lora")
    assert not (out / "checkpoints").exists()  # removed after a finished run
    assert (out / "handover.safetensors").is_file() == (method == "lora")  # the learned detector, on this encoder
    clf = IntentClassifier(str(out))
    assert (clf.head.handover is not None) == (method == "lora")
    assert clf.head.labels == sorted([*KEEP, OUT_OF_SCOPE])  # with the written out-of-scope requests as a class
    best = clf.classify(["I want to close my account", "Play some relaxing jazz music"])
    assert best[0].top[0].intent == "terminate_account" and not best[0].out_of_scope
    assert best[1].out_of_scope


def test_refit_trains_on_the_validation_split_too_and_keeps_its_calibration(tmp_path, small_train):
    """--refit: the epochs, calibration and thresholds come from the validated run, then the model is
    trained again on all the examples for that many epochs; the figures reported stay the validated run's."""
    out = tmp_path / "model"
    argv = ["--train", str(small_train), "--out", str(out), "--validation-fraction", "0.2", "--epochs", "2",
            "--refit", "--no-handover", "--no-oos-class", "--no-written"]
    assert train_intent.main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    total = sum(1 for _ in open(small_train))
    assert metrics["refit"]["train_examples"] == total > metrics["train_examples"] == metrics["selected"]["train_examples"]
    assert metrics["refit"]["epochs"] == metrics["fine_tune"]["best_epoch"]  # stopped where validation was best
    # The lexical model was refitted too: words only the validation queries use are now in it.
    assert metrics["refit"]["lexical_terms"] > metrics["lexical"]["terms"]
    assert metrics["validation"]["examples"] == total - metrics["train_examples"]
    clf = IntentClassifier(str(out))
    assert clf.head.temperature == pytest.approx(metrics["temperature"], abs=1e-4) and clf.head.threshold == metrics["threshold"]
    assert metrics["selected"]["out_of_scope"]["escalated"] > 0.5 and metrics["out_of_scope"]["escalated"] > 0.5
    best = clf.classify(["I want to close my account", "Play some relaxing jazz music"])
    assert best[0].top[0].intent == "terminate_account" and best[1].out_of_scope
    assert not (out / "checkpoints").exists()


def test_training_data_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,intent\nhello,\n")
    assert train_intent.main(["--train", str(bad), "--out", str(tmp_path / "m")]) == 1
    assert "bad.csv:2: each row needs 'text' and 'intent'" in capsys.readouterr().err


@pytest.mark.parametrize("name, right, kept", [("entity_heavy.jsonl", 24, 22), ("entity_heavy_2.jsonl", 60, 52),
                                               ("entity_heavy_3.jsonl", 61, 47)])
def test_requests_full_of_customer_details(classifier, name, right, kept):
    """Written the way customers add their details (data/examples/entity_heavy*.jsonl): the shipped
    model before entity-noise training got 23 of 30 right and answered 17; now 26 and 25. The two sets of
    80 were written later by writers who had seen neither the model nor its data, as whole emails, chats
    and calls (numbers in words, fillers) rather than one-line requests, and scored once as they came:
    63 and 64 right, 55 and 50 right and answered by the classifier (out of scope is most of the rest).
    The bounds hold those figures, a few messages below them."""
    examples = read_examples(REPO / "data/examples" / name)
    predictions = classifier.classify([e.text for e in examples])
    correct = [p.top[0].intent == e.intent for p, e in zip(predictions, examples)]
    answered = [not classifier.escalates(p) for p in predictions]
    assert sum(correct) >= right
    assert sum(r and a for r, a in zip(correct, answered)) >= kept


def test_entity_noise_outside_zero_to_one_is_a_one_line_error(tmp_path, small_train, capsys):
    argv = ["--train", str(small_train), "--out", str(tmp_path / "m"), "--entity-noise", "1.5"]
    assert train_intent.main(argv) == 1
    assert "--entity-noise is a share of the training examples, between 0 and 1: not 1.5" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()  # rejected before any work


def test_a_negative_part_weight_is_a_one_line_error(tmp_path, small_train, capsys):
    argv = ["--train", str(small_train), "--out", str(tmp_path / "m"), "--part-weight", "-1"]
    assert train_intent.main(argv) == 1
    assert "--part-weight is a weight of the loss, 0 or more: not -1" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()  # rejected before any work


@pytest.mark.parametrize("flags, problem", [
    (["--written-repeat", "-1"], "--written-repeat is a number of readings per epoch, 0 or more: not -1"),
    (["--written", "no/such/file.jsonl"], "written messages not found: no/such/file.jsonl"),
])
def test_bad_written_message_flags_are_one_line_errors(tmp_path, small_train, capsys, flags, problem):
    assert train_intent.main(["--train", str(small_train), "--out", str(tmp_path / "m"), *flags]) == 1
    assert problem in capsys.readouterr().err
    assert not (tmp_path / "m").exists()  # rejected before any work


def test_thresholds_refit_in_place_under_a_new_budget(tmp_path, small_train, monkeypatch):
    """python -m finetune.thresholds: a larger budget escalates more (higher confidence threshold, lower
    out-of-scope threshold); only the thresholds and the second-request scorer change, and the artefact,
    named by a path relative to the working directory, still names its adapter relative to itself."""
    from finetune import thresholds

    model = tmp_path / "intent"
    shutil.copytree(REPO / "agent/data/intent", model)
    before = IntentHead.load(model)
    monkeypatch.chdir(tmp_path)
    base = ["--model", "intent", "--train", str(small_train), "--validation-fraction", "0.2"]
    assert thresholds.main([*base, "--escalate-budget", "0.3"]) == 0
    wide = IntentHead.load(model)
    assert thresholds.main([*base, "--escalate-budget", "0.01"]) == 0
    narrow = IntentHead.load(model)
    assert wide.threshold > narrow.threshold and wide.oos.threshold < narrow.oos.threshold
    assert np.array_equal(narrow.weight, before.weight) and narrow.labels == before.labels
    assert json.loads((model / "config.json").read_text())["adapter"] == "adapter"
    metrics = json.loads((model / "metrics.json").read_text())
    assert metrics["escalate_budget"] == 0.01 and metrics["threshold"] == narrow.threshold
    assert narrow.second_requests is not None and metrics["requests"]["single_with_extra"] <= 0.02
