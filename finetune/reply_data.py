"""Bootstrap reply-generator records from labelled messages and the knowledge base.

    python -m finetune.reply_data --out data/replies [--train data/banking77/train.csv] [--kb default]

Each record is ``{"text", "intent", "channel", "passage", "reply"}``: a customer message, its
intent, the approved passage retrieved for it (with the entry's sentences for the customer's
details, filled in) and the reply body the grounded composer writes.
Until a team has replies written or corrected by people (the learning loop collects them), this
teaches a generator the one thing it must do well: carry the passage's facts and the customer's
own details into a reply. Two augmentations make it learn to copy rather than memorise:

* the numbers of the passage are replaced by other numbers of the same length in a share of the
  records (``--perturb``), so a fee or delivery time is read from the passage, never recalled;
* a share of the messages gets a sentence with a detail the intent's entry can acknowledge (an
  amount, a date, a reference, card digits), with random values, so details are copied from the
  customer's words.
"""
from __future__ import annotations

import argparse
import json
import random
import re
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from agent.compose import body, grounding, unframe
from agent.entities import extract
from agent.knowledge import KnowledgeBase
from agent.labelled import read_examples, rows
from agent.sentiment import sentiment
from agent.types import AgentError
from finetune import script

REPO = Path(__file__).resolve().parent.parent
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")


def _detail(slot: str, rng: random.Random) -> str:
    if slot == "amount":
        value = f"£{rng.randint(5, 900)}" + (f".{rng.randint(10, 99)}" if rng.random() < 0.5 else "")
        return rng.choice([f"It was for {value}.", f"The amount was {value}.", f"That's {value} I'm missing."])
    if slot == "date":
        value = f"{rng.randint(1, 28)} {rng.choice(MONTHS)}"
        return rng.choice([f"This was on {value}.", f"I ordered it on {value}.", f"It happened on {value}."])
    if slot == "reference":
        value = f"{rng.choice(['KB', 'TX', 'REF', 'ORD'])}-{rng.randint(10000, 999999)}"
        return rng.choice([f"The reference is {value}.", f"Reference {value}.", f"My order number is {value}."])
    value = f"{rng.randint(0, 9999):04d}"
    return rng.choice([f"My card ends in {value}.", f"The card ending {value}."])


def _perturb_numbers(answer: str, rng: random.Random) -> str:
    return re.sub(r"\d+", lambda m: str(rng.randint(10 ** (len(m.group()) - 1) if len(m.group()) > 1 else 1,
                                                    10 ** len(m.group()) - 1)), answer)


def build(examples, kb: KnowledgeBase, per_intent: int, perturb: float, details: float, seed: int):
    rng = random.Random(seed)
    by_intent = defaultdict(list)
    for ex in examples:
        by_intent[ex.intent].append(ex)
    records = []
    for intent in tqdm(sorted(by_intent), desc="records", unit="intent"):
        entries = kb.for_intent(intent)
        if not entries:
            continue
        for ex in rng.sample(by_intent[intent], min(per_intent, len(by_intent[intent]))):
            entry = entries[0]
            text = ex.text
            if entry.personal and rng.random() < details:
                text = f"{text} {_detail(rng.choice(sorted(entry.personal)), rng)}"
            if rng.random() < perturb:
                entry = replace(entry, answer=_perturb_numbers(entry.answer, rng))
            channel = rng.choice(("email", "call"))
            upset = sentiment(text).label == "negative"
            entities = extract(text)
            records.append({"text": text, "intent": intent, "channel": channel,
                            "passage": grounding(entry, entities),
                            "reply": body(entry, entities, channel, apologise=upset)})
    rng.shuffle(records)
    return records


def from_records(paths: list[str], kb: KnowledgeBase) -> tuple[list[dict], dict[str, int]]:
    """Reply records from the learning loop's records (``agent.records``): replies people corrected.

    A record counts when a person edited its reply and its intent (the corrected one, if corrected)
    has an entry; the reply's greeting and closing are taken off (``unframe``), since the composer
    frames what the generator writes. Returns the records and what was skipped, by reason.
    """
    from agent.records import Record

    out, skipped = [], defaultdict(int)
    for path in paths:
        for _, row in rows(path):
            try:
                if isinstance(row, AgentError):
                    raise row
                record = Record.from_dict(row)
            except AgentError:
                skipped["not a record"] += 1
                continue
            intent = record.corrected_intent or record.intent
            entries = kb.for_intent(intent)
            middle = unframe(record.corrected_reply or "", record.channel)
            if not record.corrected_reply:
                skipped["no corrected reply"] += 1
            elif not entries:
                skipped[f"no knowledge-base entry for '{intent}'"] += 1
            elif not middle:
                skipped["corrected reply empty once greeting and closing are off"] += 1
            else:
                channel = "call" if record.channel == "call" else "email"
                out.append({"text": record.text, "intent": intent, "channel": channel,
                            "passage": grounding(entries[0], extract(record.text)), "reply": middle})
    return out, dict(skipped)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m finetune.reply_data", description=__doc__.splitlines()[0])
    p.add_argument("--train", default=str(REPO / "data" / "banking77" / "train.csv"))
    p.add_argument("--kb", default="default", help="knowledge base YAML (default: the shipped one)")
    p.add_argument("--out", required=True, help="directory for train.jsonl and validation.jsonl")
    p.add_argument("--per-intent", type=int, default=30, help="messages per intent")
    p.add_argument("--validation-fraction", type=float, default=0.1)
    p.add_argument("--perturb", type=float, default=0.5, help="share of records with passage numbers changed")
    p.add_argument("--details", type=float, default=0.4, help="share of messages given a detail to acknowledge")
    p.add_argument("--records", nargs="+", default=[], metavar="FILE",
                   help="learning-loop records (records_file, feedback_file): replies people corrected are added")
    p.add_argument("--seed", type=int, default=13)
    args = p.parse_args(argv)
    return script.run("finetune.reply_data", lambda: write(args))


def write(args: argparse.Namespace) -> dict:
    """Build the records and write ``train.jsonl`` and ``validation.jsonl``; the summary."""
    kb = KnowledgeBase.load(args.kb)
    records = build(read_examples(args.train), kb, args.per_intent, args.perturb, args.details, args.seed)
    corrected, skipped = from_records(args.records, kb)
    if corrected:  # people's replies go to training and validation alike, so validation measures them too
        records = corrected + records
        random.Random(args.seed).shuffle(records)
    n_val = max(1, int(len(records) * args.validation_fraction))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, part in (("validation.jsonl", records[:n_val]), ("train.jsonl", records[n_val:])):
        with open(out / name, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in part)
    return {"train": len(records) - n_val, "validation": n_val, "from_records": len(corrected),
            "skipped_records": skipped, "out": str(out)}


if __name__ == "__main__":
    raise SystemExit(main())
