"""The learning loop: versions, promotion on a held-out set, rollback, and teaching a new intent."""
import json
import random
import shutil

import numpy as np
import pytest

from agent import model_versions
from agent.intent import DEFAULT_DIR, IntentClassifier, IntentHead
from agent.labelled import read_examples
from agent.types import AgentError
from conftest import REPO, run_cli
from finetune import intent as train_intent
from finetune import prepare

EXAMPLES = REPO / "data" / "examples"
OLD = ("card_arrival", "lost_or_stolen_card", "terminate_account", "apple_pay_or_google_pay", "exchange_rate",
       "change_pin")


def test_version_id_names_the_time_and_the_training_data(tmp_path, monkeypatch):
    from datetime import datetime, timezone

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2026, 5, 1, 12, 0, 0, tzinfo=timezone.utc)

    monkeypatch.setattr(model_versions, "datetime", Frozen)  # the same second: only the data can differ

    def version(name: str, data: str) -> dict:
        out = tmp_path / name
        out.mkdir()
        (out / "data.jsonl").write_text(data)
        return model_versions.write_version(out, "intent", {}, [out / "data.jsonl"], "base", {})

    first, same, changed = version("a", "data 0"), version("b", "data 0"), version("c", "data 1")
    assert first["id"] == same["id"] == "20260501-120000-" + first["data_hash"][:8]
    assert changed["id"] != first["id"] and changed["data_hash"] != first["data_hash"]


def test_registry_versions_pointer_and_rollback(tmp_path):
    store = tmp_path / "models"
    trained = []
    for n in range(2):
        out = tmp_path / f"run{n}"
        out.mkdir()
        (out / "weights").write_text(f"model {n}")
        (out / "data.jsonl").write_text(f"data {n}")
        info = model_versions.write_version(out, "intent", {"accuracy": 0.9 + n / 100}, [out / "data.jsonl"], "base",
                                    {"lr": 0.1, "path": out}, parent=model_versions.SHIPPED if n == 0 else trained[0]["id"])
        assert info["data_hash"] == model_versions.data_hash([out / "data.jsonl"]) and info["settings"]["path"] == str(out)
        trained.append(info)
    shipped = tmp_path / "shipped"
    assert model_versions.resolve("intent", "default", shipped, store) == shipped  # nothing promoted yet
    assert model_versions.resolve("intent", "/some/path", shipped, store).as_posix() == "/some/path"
    for n in range(2):
        model_versions.set_current(store, "intent", model_versions.install(store, tmp_path / f"run{n}").name)
    current = model_versions.resolve("intent", "default", shipped, store)
    assert (current / "weights").read_text() == "model 1" and current.parent == store / "intent"
    assert [v["id"] for v in model_versions.versions(store, "intent")] == [trained[0]["id"], trained[1]["id"]]
    assert model_versions.rollback(store, "intent")["version"] == trained[0]["id"]
    assert (model_versions.resolve("intent", "default", shipped, store) / "weights").read_text() == "model 0"
    assert model_versions.rollback(store, "intent")["version"] is None
    assert model_versions.resolve("intent", "default", shipped, store) == shipped
    with pytest.raises(AgentError, match="nothing to roll back"):
        model_versions.rollback(store, "intent")
    with pytest.raises(AgentError, match="not a model version"):
        model_versions.install(store, tmp_path)


def subset(path, intents, per_intent, seed=0):
    rows = [e for e in read_examples(path) if e.intent in intents]
    random.Random(seed).shuffle(rows)
    taken = {i: 0 for i in intents}
    kept = [e for e in rows if (taken.__setitem__(e.intent, taken[e.intent] + 1) or taken[e.intent]) <= per_intent]
    return [{"text": e.text, "intent": e.intent} for e in kept]


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    """Prepare + head-only retraining from the shipped model on a small slice of Banking77 (six intents)
    plus 50 examples of a new intent, as in the README walk-through, only smaller to be quick."""
    tmp = tmp_path_factory.mktemp("loop")
    base = write(tmp / "base.jsonl", subset(REPO / "data" / "banking77" / "train.csv", OLD, 30))
    heldout = write(tmp / "heldout.jsonl", subset(REPO / "data" / "heldout" / "intent.jsonl", OLD, 8))
    prepared, out = tmp / "prepared", tmp / "candidate"
    assert prepare.main(["--new", str(EXAMPLES / "travel_notification-train.jsonl"), "--base-data", str(base),
                         "--heldout", str(heldout), "--out", str(prepared), "--allow-new-intents"]) == 0
    assert train_intent.main(["--data", str(prepared), "--init-from", str(DEFAULT_DIR), "--method", "head",
                              "--out", str(out), "--oos", ""]) == 0
    return tmp, prepared, out, heldout


def test_new_intent_is_learnt_and_versioned(loop):
    tmp, prepared, out, _ = loop
    for secret in ("John Smith", "Kowalski", "4111", "07700"):  # PII from the new transcripts
        assert secret not in (prepared / "train.jsonl").read_text() + (prepared / "validation.jsonl").read_text()
    info = model_versions.read_version(out)
    assert info["kind"] == "intent" and info["parent"] == model_versions.SHIPPED
    assert info["data_hash"] == model_versions.data_hash([prepared / "train.jsonl", prepared / "validation.jsonl"])
    assert info["settings"]["method"] == "head" and "adapter" in info["base_model"].lower()
    assert (out / "adapter").is_dir() and not (out / "checkpoints").exists()
    clf = IntentClassifier(str(out))
    assert "travel_notification" in clf.head.labels and set(OLD) <= set(clf.head.labels)
    # Calibration and thresholds are the parent's: this validation split comes from what its encoder learnt.
    parent = IntentHead.load(DEFAULT_DIR)
    assert (clf.head.temperature, clf.head.lexical_weight, clf.threshold, clf.head.oos.threshold) == (
        parent.temperature, parent.lexical_weight, parent.threshold, parent.oos.threshold)
    assert parent.oos.scale is not None and np.array_equal(clf.head.oos.scale, parent.oos.scale)
    assert clf.head.lexical is not None and "travel" in clf.head.lexical.vocabulary
    held = read_examples(EXAMPLES / "travel_notification-heldout.jsonl")
    predicted = [p.top[0].intent for p in clf.classify([e.text for e in held])]
    assert np.mean([p == "travel_notification" for p in predicted]) >= 0.85


def test_recalibrate_refits_what_init_from_keeps(loop, tmp_path):
    _, prepared, _, _ = loop
    out = tmp_path / "recalibrated"
    assert train_intent.main(["--data", str(prepared), "--init-from", str(DEFAULT_DIR), "--method", "head",
                              "--out", str(out), "--oos", "", "--recalibrate"]) == 0
    head, parent = IntentHead.load(out), IntentHead.load(DEFAULT_DIR)
    assert head.temperature != parent.temperature and head.threshold != parent.threshold
    assert "calibration" not in json.loads((out / "metrics.json").read_text())


def test_promote_compares_and_the_agent_follows_then_rollback(loop, tmp_path, capsys, monkeypatch):
    from channels import cli
    from agent import promotion

    _, _, out, heldout = loop
    store = tmp_path / "models"
    env = {"SUPPORT_AGENT_MODELS_DIR": str(store)}
    monkeypatch.setenv("SUPPORT_AGENT_MODELS_DIR", str(store))  # for the in-process commands

    def command(*argv):
        code = cli.main(list(argv))
        captured = capsys.readouterr()
        return code, [json.loads(line) for line in captured.out.splitlines()], captured.err

    done = run_cli("models", "promote", str(out), "--heldout", str(heldout), env=env)
    assert done.returncode == 0, done.stderr.decode()
    result = json.loads(done.stdout)
    assert result["promoted"] == model_versions.read_version(out)["id"] and result["previous"] == model_versions.SHIPPED
    assert set(result["comparison"]["metrics"]) == {"accuracy", "macro_f1"} and not result["comparison"]["worse"]
    assert "shipped" in done.stderr.decode() and "accuracy" in done.stderr.decode()  # the side-by-side table

    # A deliberately broken copy (head rows shuffled: it answers the wrong intents) is refused, unless forced.
    from safetensors.numpy import load_file, save_file

    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    head = load_file(str(broken / "head.safetensors"))
    head["weight"] = np.ascontiguousarray(np.roll(head["weight"], 1, axis=0))
    save_file(head, str(broken / "head.safetensors"))
    model_versions.write_version(broken, "intent", {}, [broken / "head.safetensors"], "broken", {})
    with pytest.raises(AgentError, match=r"not promoted: .* is worse than .* on accuracy, macro_f1"):
        promotion.promote(store, broken, heldout)
    assert model_versions.pointer(store, "intent")["version"] == result["promoted"]

    classified = run_cli("classify", "I'm off to Lisbon on Saturday, please note it so my card isn't blocked", env=env)
    assert json.loads(classified.stdout)["intent"] == "travel_notification"  # the agent uses the promoted model

    code, listed, _ = command("models", "list")
    assert [v["version"] for v in listed if v["kind"] == "intent" and v["current"]] == [result["promoted"]]
    code, _, err = command("models", "promote", str(out))
    assert code == 1 and "already the promoted intent model" in err
    code, (back,), _ = command("models", "rollback")
    assert code == 0 and back["current"] == model_versions.SHIPPED and model_versions.current(store, "intent") is None
    code, _, err = command("models", "promote", str(tmp_path))
    assert code == 1 and err.startswith("support-agent: error:") and "is not a model version" in err
