"""Drafting benchmark: the grounded composer and the fine-tuned generator side by side, one run.

    python bench/drafting.py [--records data/replies/validation.jsonl] [--limit 100] [--generator default]
                             [--json FILE]

Messages are the generator's validation records (Banking77 training messages the generator never
trained on, some with an amount, date, reference or card digits added). Each is answered by the
agent with each drafter, against the shipped knowledge base. Over the messages whose intent the
classifier gets right (so the drafter, not the classifier, is measured), it reports:

* key-fact recall: the share of the entry's ``facts`` present in the reply;
* invented-number rate: replies stating a number that is in neither the message, the knowledge
  base's passages the draft was grounded in (a further request's too) or personal sentences, nor the
  business's details;
* unfilled slots; detail recall: the customer's amount/date/reference/card digits repeated where
  the entry acknowledges them;
* ROUGE-L and chrF of the reply body against the record's reference reply (bootstrap references
  are composer-written, so the composer scores 1.0 by construction: the figure becomes meaningful
  once people's replies arrive through the learning loop);
* drafting latency (retrieval, drafting and guards; understanding excluded), median and p95;
* for the generator, how often its draft passed the guards (``source == generator``) and why not.

Then a knowledge-base edit: the delivery time of ``card_arrival`` and a fee of ``atm_support`` are
changed in a copy of the knowledge base, and the share of drafts that carry the new value is
reported for each drafter, with no retraining.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent import guards  # noqa: E402
from agent.compose import frame, grounding  # noqa: E402
from agent.knowledge import DEFAULT_PATH  # noqa: E402
from agent.pipeline import Agent  # noqa: E402
from agent.settings import Settings  # noqa: E402
from agent.types import Message  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
# (intent, old text, new text) edits for the knowledge-base check.
EDITS = [("card_arrival", "3 to 5 working days", "2 to 4 working days"),
         ("card_arrival", "7 working days", "6 working days")]
EDIT_MESSAGES = ["My new card still hasn't arrived, where is it?", "How long does a card take to come in the post?",
                 "I ordered my card last week and have nothing yet", "Card not delivered yet, what do I do?",
                 "When will the card I ordered arrive?", "still waiting on my card to show up",
                 "It's been ages and my card never came", "Has my card been sent? It isn't here yet"]


def _drafting_seconds(agent: Agent, message: Message) -> tuple[object, float]:
    """The reply and the time spent after understanding (retrieval, drafting, guards)."""
    understood = agent._understand(message.text)
    start = time.perf_counter()
    reply = agent.respond(message, *understood)
    return reply, time.perf_counter() - start


def run(agent: Agent, records: list[dict]) -> dict:
    from rouge_score import rouge_scorer
    import sacrebleu
    from tqdm import tqdm

    rouge = rouge_scorer.RougeScorer(["rougeL"])
    business = " ".join(agent.knowledge.business.values())
    rows, fallbacks = [], Counter()
    for r in tqdm(records, desc=agent.settings.drafter, unit="msg"):
        reply, seconds = _drafting_seconds(agent, Message(r["text"], r.get("channel", "email")))
        if reply.escalate or reply.intent != r["intent"]:
            continue
        entry = agent.knowledge.for_intent(r["intent"])[0]
        # the passages the draft was grounded in: the main entry's, and a further request's where one was found
        sources = [r["text"], entry.answer, *reply.passages, business, *entry.personal.values(),
                   *(e.value for e in reply.entities)]
        details = [e.value for e in reply.entities if e.kind in entry.personal]
        if reply.fallback_reason:
            fallbacks[reply.fallback_reason.split(":")[1].strip()] += 1
        reference = (frame(r["reply"], r.get("channel", "email"), agent.knowledge.business)
                     if r["passage"] == grounding(entry, reply.entities) else None)  # perturbed passages have none
        rows.append({
            "fact_recall": np.mean([f in reply.text for f in entry.facts]) if entry.facts else 1.0,
            "invented": bool(guards.unsupported_numbers(reply.text, sources)),
            "unfilled": bool(re.search(r"\{[^{}\s]*\}", reply.text)),
            "detail_recall": np.mean([d in reply.text for d in details]) if details else None,
            "rougeL": rouge.score(reference, reply.text)["rougeL"].fmeasure if reference else None,
            "chrf": sacrebleu.sentence_chrf(reply.text, [reference]).score if reference else None,
            "generated": reply.source == "generator", "seconds": seconds})
    pick = lambda key: [x[key] for x in rows if x[key] is not None]  # noqa: E731
    latencies = pick("seconds")
    return {"answered_with_right_intent": len(rows), "of": len(records),
            "fact_recall": round(float(np.mean(pick("fact_recall"))), 4),
            "invented_number_rate": round(float(np.mean(pick("invented"))), 4),
            "unfilled_slot_rate": round(float(np.mean(pick("unfilled"))), 4),
            "detail_recall": round(float(np.mean(pick("detail_recall"))), 4) if pick("detail_recall") else None,
            "rougeL_vs_reference": round(float(np.mean(pick("rougeL"))), 4),
            "chrf_vs_reference": round(float(np.mean(pick("chrf"))), 2),
            "generator_draft_used": round(float(np.mean(pick("generated"))), 4),
            "fallback_reasons": dict(fallbacks.most_common()),
            "latency_median_ms": round(1000 * float(np.median(latencies)), 1),
            "latency_p95_ms": round(1000 * float(np.percentile(latencies, 95)), 1)}


def kb_edit(settings: Settings, classifier) -> dict:
    text = DEFAULT_PATH.read_text(encoding="utf-8")
    for _, old, new in EDITS:
        text = text.replace(old, new)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kb.yaml"
        path.write_text(text, encoding="utf-8")
        agent = Agent(settings.replace(knowledge_base=str(path)))
        agent.classifier = classifier
        replies = [agent.handle(Message(m, "email")) for m in EDIT_MESSAGES]
    answered = [r for r in replies if r.intent == "card_arrival" and not r.escalate]
    return {"messages": len(EDIT_MESSAGES), "answered_as_card_arrival": len(answered),
            "new_facts_present": round(float(np.mean([all(new in r.text for _, _, new in EDITS) for r in answered])), 4)
            if answered else None,
            "old_facts_present": sum(any(old in r.text for _, old, _ in EDITS) for r in answered),
            "generator_draft_used": sum(r.source == "generator" for r in answered)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", default=str(REPO / "data" / "replies" / "validation.jsonl"))
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--generator", default="default", help="generator model directory (default: the shipped one)")
    p.add_argument("--drafters", default="composer,generator")
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args(argv)
    records = [json.loads(line) for line in open(args.records, encoding="utf-8") if line.strip()][:args.limit]
    settings = Settings.load().replace(generator_model=args.generator)
    results, classifier = {}, None
    for drafter in args.drafters.split(","):
        agent = Agent(settings.replace(drafter=drafter))
        if classifier is not None:
            agent.classifier = classifier
        agent.warm_up()
        classifier = agent.classifier
        results[drafter] = {**run(agent, records), "kb_edit": kb_edit(settings.replace(drafter=drafter), classifier)}
        print(json.dumps({drafter: results[drafter]}), flush=True)
    keys = [k for k in next(iter(results.values())) if k not in ("fallback_reasons", "kb_edit")]
    print(f"\n{'':28}" + "".join(f"{d:>14}" for d in results))
    for key in keys:
        print(f"{key:28}" + "".join(f"{str(results[d][key]):>14}" for d in results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
