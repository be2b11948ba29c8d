"""Fit the learned hand-over detector (``agent/handover.py``) for an intent model.

    python -m finetune.handover --model agent/data/intent

Reads the hand-written hand-over messages (``--train``: JSONL files with ``text`` and ``label``, one of
``agent.handover.LABELS``), half of them also inside an email's or a chat's courtesies, as the agent
reads messages (``agent.sentences``: the customer's own sentences), embeds them with the model's
encoder, adds the model's own training queries as ordinary requests ("none"), as they are and each
inside a whole message built around it (``finetune.messages``: so length, background and mild
annoyance are no cue), fits the logistic regression and stores it in the model directory
(``handover.safetensors``). ``finetune.intent`` does the same at the end of every training run; this
refits one without retraining the encoder, in a few minutes.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np

from agent.handover import HAND_WRITTEN_NONE_WEIGHT, LABELS, HandoverHead
from agent.intent import HANDOVER_FILE, IntentClassifier, resolve
from agent.labelled import read_examples
from agent.sentences import read
from agent.types import AgentError
from finetune import script
from finetune.messages import MessageBuilder

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TRAIN = [REPO / "data" / "handover" / name for name in ("train.jsonl", "whole_messages.jsonl")]
FRAMED_SHARE = 0.5  # hand-over examples also seen inside a whole message (greeting, background, sign-off)


def default_train() -> list[str]:
    return [str(p) for p in DEFAULT_TRAIN if p.is_file()]


def read_handover(paths: str | Path | list) -> tuple[list[str], list[str]]:
    """(texts, labels) of hand-over training files; an unknown label is an error."""
    texts, labels = [], []
    for path in [paths] if isinstance(paths, (str, Path)) else paths:
        examples = read_examples(path)
        unknown = sorted({e.intent for e in examples} - set(LABELS))
        if unknown:
            raise AgentError(f"{path}: unknown hand-over labels {', '.join(unknown)} (known: {', '.join(LABELS)})")
        texts += [e.text for e in examples]
        labels += [e.intent for e in examples]
    return texts, labels


def fit(embed: Callable[[list[str]], np.ndarray], ordinary: np.ndarray, texts: list[str], labels: list[str],
        seed: int = 13, framed: bool = True) -> HandoverHead:
    """The detector on ``embed``'s embeddings of ``texts`` (with their ``labels``; with ``framed``, half
    of them also inside a whole message) and on ``ordinary`` (the embeddings of the intent model's
    training texts, labelled "none")."""
    if framed:
        rng = random.Random(f"{seed}:handover")
        builder = MessageBuilder(rng)
        extra = [(builder.frame(t), y) for t, y in zip(texts, labels) if rng.random() < FRAMED_SHARE]
        texts, labels = texts + [t for t, _ in extra], labels + [y for _, y in extra]
    read_texts = [read(t).text or t for t in texts]
    weights = [HAND_WRITTEN_NONE_WEIGHT if label == "none" else 1.0 for label in labels] + [1.0] * len(ordinary)
    return HandoverHead.fit(np.concatenate([embed(read_texts), ordinary]), labels + ["none"] * len(ordinary), weights)


def summary(train: str | Path | list, labels: list[str], ordinary: int) -> dict:
    """What a model's metrics record of its hand-over detector."""
    files = [train] if isinstance(train, (str, Path)) else train
    return {"train_files": [Path(f).name for f in files], "examples": dict(sorted(Counter(labels).items())),
            "ordinary": ordinary}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m finetune.handover", description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default", help="intent model directory ('default': the promoted or shipped one)")
    p.add_argument("--models-dir", help="model versions, for --model default (default: setting 'models_dir')")
    p.add_argument("--train", nargs="+", default=default_train(),
                   help="hand-over messages: JSONL files with text and label (default: data/handover/train.jsonl "
                        "and whole_messages.jsonl)")
    p.add_argument("--ordinary", default=str(REPO / "data" / "banking77" / "train.csv"),
                   help="the intent model's training data (CSV or JSONL with text), used as ordinary requests")
    p.add_argument("--messages", type=float, default=1.0, metavar="SHARE",
                   help="the share of ordinary requests also read inside a whole message built around them (0: none)")
    p.add_argument("--validation-fraction", type=float, default=0.1,
                   help="the share of --ordinary the intent model held out (left out here too; 0: none)")
    p.add_argument("--seed", type=int, default=13, help="the seed of the intent model's validation split")
    return p.parse_args(argv)


def ordinary_texts(args) -> list[str]:
    """The ordinary requests, as they are and (a share ``--messages``) inside built messages, as read."""
    from finetune.intent_data import load_data

    if args.validation_fraction > 0:
        texts, labels = load_data(argparse.Namespace(train=args.ordinary, validation=None, seed=args.seed,
                                                      validation_fraction=args.validation_fraction))[:2]
    else:
        examples = read_examples(args.ordinary)
        texts, labels = [e.text for e in examples], [e.intent for e in examples]
    rng = random.Random(f"{args.seed}:fit")
    builder = MessageBuilder(rng)
    built = [builder.build([(t, y)]).text for t, y in zip(texts, labels) if rng.random() < args.messages]
    return [read(t).text or t for t in texts + built]


def main(argv=None) -> int:
    args = parse_args(argv)

    def work() -> dict:
        from agent.settings import Settings

        if not args.train:
            raise AgentError("no hand-over training file: give --train FILE")
        texts, labels = read_handover(args.train)  # before any model work: a bad file fails at once
        directory = resolve(args.model, args.models_dir or Settings.load().models_dir)
        classifier = IntentClassifier(str(directory))
        ordinary = ordinary_texts(args)
        embed = lambda batch: classifier.encoder.encode(batch, progress=True)  # noqa: E731
        fit(embed, embed(ordinary), texts, labels, args.seed).save(directory / HANDOVER_FILE)
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
