"""The training scripts under ``accelerate launch`` with two CPU processes (gloo): each trains on half of
every batch, and one of them writes the model, its metrics and its summary."""
import csv
import json
import math
import os
import subprocess
import sys

from agent.intent import IntentClassifier
from conftest import REPO, free_port
from test_drafting import _tiny_random_base


def launch(module: str, *args: str, cwd, cache_dir) -> subprocess.CompletedProcess:
    """``accelerate launch --multi_gpu --num_processes 2 -m MODULE ARGS``, with no GPU in sight: two CPU processes."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1",
           "SUPPORT_AGENT_CACHE_DIR": str(cache_dir)}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()), "-m", module, *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=900)


def test_intent_training_runs_data_parallel_in_two_processes(tmp_path, cache_dir):
    keep = ["card_arrival", "pin_blocked", "terminate_account"]
    rows = list(csv.DictReader(open(REPO / "data/banking77/train.csv", encoding="utf-8")))
    chosen = [r for intent in keep for r in [r for r in rows if r["category"] == intent][:30]]
    data = tmp_path / "small.jsonl"
    data.write_text("".join(json.dumps({"text": r["text"], "intent": r["category"]}) + "\n" for r in chosen))
    out = tmp_path / "model"
    proc = launch("finetune.intent", "--train", str(data), "--out", str(out), "--validation-fraction", "0.2",
                  "--epochs", "1", "--batch-size", "8", "--no-handover", "--no-written", "--no-oos-train-only",
                  cwd=tmp_path, cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(proc.stdout.splitlines()) == 1 and json.loads(proc.stdout)["out"] == str(out)  # one summary
    metrics = json.loads((out / "metrics.json").read_text())
    tuned = metrics["fine_tune"]
    # Each step took a batch of 8 in each process: half the steps one process would take.
    assert tuned["processes"] == 2 and tuned["steps"] == math.ceil(math.ceil(metrics["train_examples"] / 8) / 2)
    assert metrics["validation"]["accuracy"] > 0.8 and not (out / "checkpoints").exists()
    best = IntentClassifier(str(out)).classify(["I want to close my account"])[0]
    assert best.top[0].intent == "terminate_account"


def test_generator_training_runs_data_parallel_in_two_processes(tmp_path, cache_dir):
    base = _tiny_random_base("causal", tmp_path / "base")
    out = tmp_path / "gen"
    proc = launch("finetune.generator", "--train", str(REPO / "data/replies/train.jsonl"), "--out", str(out),
                  "--base", str(base), "--method", "full", "--max-train", "16", "--max-eval", "4", "--epochs", "1",
                  "--batch-size", "4", "--score-records", "1", "--max-new-tokens", "4", cwd=tmp_path,
                  cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(proc.stdout.splitlines()) == 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["steps"] == 16 // (4 * 2)
    assert (out / "model").is_dir() and (out / "version.json").is_file()
