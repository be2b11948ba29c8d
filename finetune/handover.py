"""Fit the learned hand-over detector (``agent/handover.py``) for an intent model.

    python -m finetune.handover --model agent/data/intent

Embeds the hand-written hand-over messages (``--train``, JSONL with ``text`` and ``label``, one of
``agent.handover.LABELS``) with the model's encoder, adds the model's own training queries as
ordinary requests ("none"), fits the logistic regression and stores it in the model directory
(``handover.safetensors``). ``finetune.intent`` does the same at the end of every training run;
this adds one to a model trained without it, in about a minute, without retraining the encoder.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np

from agent.handover import HAND_WRITTEN_NONE_WEIGHT, LABELS, HandoverHead
from agent.intent import HANDOVER_FILE, IntentClassifier, resolve
from agent.types import AgentError
from finetune import script
from finetune.data import read_examples

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TRAIN = REPO / "data" / "handover" / "train.jsonl"


def read_handover(path: str | Path) -> tuple[list[str], list[str]]:
    """(texts, labels) of a hand-over training file; an unknown label is an error."""
    examples = read_examples(path)
    unknown = sorted({e.intent for e in examples} - set(LABELS))
    if unknown:
        raise AgentError(f"{path}: unknown hand-over labels {', '.join(unknown)} (known: {', '.join(LABELS)})")
    return [e.text for e in examples], [e.intent for e in examples]


def fit(embed: Callable[[list[str]], np.ndarray], ordinary: np.ndarray, texts: list[str], labels: list[str]
        ) -> HandoverHead:
    """The detector on ``embed``'s embeddings of ``texts`` (with their ``labels``) and on ``ordinary``
    (the embeddings of the intent model's training queries, labelled "none")."""
    weights = [HAND_WRITTEN_NONE_WEIGHT if label == "none" else 1.0 for label in labels] + [1.0] * len(ordinary)
    return HandoverHead.fit(np.concatenate([embed(texts), ordinary]), labels + ["none"] * len(ordinary), weights)


def summary(train: str | Path, labels: list[str], ordinary: int) -> dict:
    """What a model's metrics record of its hand-over detector."""
    return {"train_file": Path(train).name, "examples": dict(sorted(Counter(labels).items())), "ordinary": ordinary}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m finetune.handover", description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default", help="intent model directory ('default': the promoted or shipped one)")
    p.add_argument("--models-dir", help="model versions, for --model default (default: setting 'models_dir')")
    p.add_argument("--train", default=str(DEFAULT_TRAIN), help="hand-over messages: JSONL with text and label")
    p.add_argument("--ordinary", default=str(REPO / "data" / "banking77" / "train.csv"),
                   help="the intent model's training data (CSV or JSONL with text), used as ordinary requests")
    p.add_argument("--validation-fraction", type=float, default=0.1,
                   help="the share of --ordinary the intent model held out (left out here too; 0: none)")
    p.add_argument("--seed", type=int, default=13, help="the seed of the intent model's validation split")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    def work() -> dict:
        from agent.settings import Settings
        from finetune.intent_data import load_data

        texts, labels = read_handover(args.train)  # before any model work: a bad file fails at once
        directory = resolve(args.model, args.models_dir or Settings.load().models_dir)
        classifier = IntentClassifier(str(directory))
        if args.validation_fraction > 0:
            ordinary = load_data(argparse.Namespace(train=args.ordinary, validation=None, seed=args.seed,
                                                    validation_fraction=args.validation_fraction))[0]
        else:
            ordinary = [e.text for e in read_examples(args.ordinary)]
        embed = lambda batch: classifier.encoder.encode(batch, progress=True)  # noqa: E731
        fit(embed, embed(ordinary), texts, labels).save(directory / HANDOVER_FILE)
        record = summary(args.train, labels, len(ordinary))
        config_file, metrics_file = directory / "config.json", directory / "metrics.json"
        config = json.loads(config_file.read_text(encoding="utf-8"))  # only the hand-over keys change
        config["handover"] = HANDOVER_FILE
        config.setdefault("metrics", {})["handover"] = record
        config_file.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        if metrics_file.is_file():
            metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
            metrics_file.write_text(json.dumps(metrics | {"handover": record}, indent=2) + "\n", encoding="utf-8")
        return {"model": str(directory), "handover": HANDOVER_FILE, **record}
    return script.run("finetune.handover", work)


if __name__ == "__main__":
    sys.exit(main())
