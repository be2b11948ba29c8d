"""Whole messages as they arrive: read by their parts, every request found, escalations with evidence,
and the headline figures recomputed on sets written by people who had seen neither the model nor its data."""
import json

import pytest

from conftest import REPO, run_cli
from finetune import message_sets
from agent.labelled import read_examples

EVAL = REPO / "data" / "messages" / "eval"

# Written for issue #22, all escalated by the model before (three as out of scope, one as the wrong intent).
ISSUE_EXAMPLES = {
    "Good afternoon, I was on the bus home yesterday and I think my bank card fell out of my pocket. Could you "
    "cancel it please and send me a new one?": "lost_or_stolen_card",
    "My card got rejected at the petrol station this morning although there is more than enough money on the "
    "account. Quite awkward, can you look into it?": "declined_card_payment",
    "I bought train tickets in Switzerland in francs and the conversion you used is a lot worse than what the "
    "exchange sites showed for that day. Why is that?": "card_payment_wrong_exchange_rate",
    "Hello team, quick question, I am moving to Portugal next spring for work and wanted to know if I can keep "
    "using my account there. Thanks a lot, Maria": "country_support",
}


# The shipped model reads the first as lost_or_stolen_card, but at 0.22 and beyond its out-of-scope
# threshold: "send me a new one" pulls it towards a replacement card (docs/experiments/intent.md).
KNOWN_MISSES = {next(iter(ISSUE_EXAMPLES))}


@pytest.mark.parametrize("text, intent", [
    pytest.param(t, i, marks=pytest.mark.xfail(strict=True, reason="known miss of the shipped model")) if t in KNOWN_MISSES
    else (t, i) for t, i in ISSUE_EXAMPLES.items()])
def test_ordinary_whole_messages_are_answered(agent, text, intent):
    u = agent.understand(text)
    assert u.intent == intent and not u.escalate, (u.intent, u.reason)


def test_two_requests_are_both_found_each_with_its_sentence(agent):
    text = ("Hi, my card hasn't arrived yet and it's been two weeks since I ordered it. "
            "And while I have you, how do I change my PIN? Thanks, Sam")
    u = agent.understand(text)
    assert sorted(r["intent"] for r in u.intents) == ["card_arrival", "change_pin"]
    assert u.intents[0]["intent"] == u.intent  # the message's own intent first
    sentences = {r["intent"]: r["sentence"] for r in u.intents}
    assert sentences["change_pin"] == "And while I have you, how do I change my PIN?"
    assert sentences["card_arrival"].startswith("Hi, my card hasn't arrived yet")
    assert all(0 < r["probability"] <= 1 for r in u.intents)


def test_the_reply_answers_each_request(agent):
    from agent.types import Message

    reply = agent.handle(Message("My card still hasn't come. Also, how do I change my PIN?", "email", "Sam"))
    assert not reply.escalate and sorted(r["intent"] for r in reply.intents) == ["card_arrival", "change_pin"]
    first, second = (agent.knowledge.for_intent(r["intent"])[0] for r in reply.intents)
    assert first.answer in reply.text and second.answer in reply.text
    assert reply.text.index(first.answer) < reply.text.index(second.answer)  # in the order of the requests
    assert reply.passages[:2] == [first.answer, second.answer]  # what the draft is grounded in, each request's


def test_one_request_is_one_intent(agent):
    u = agent.understand("Dear team,\n\nI lost my card on the train this morning. Please block it.\n\nKind regards,\nAnn")
    assert [r["intent"] for r in u.intents] == ["lost_or_stolen_card"]


def test_a_subject_line_names_the_topic_and_asks_nothing_of_its_own(agent):
    # Read alone, this subject leans to pending_top_up; the body asks one thing.
    u = agent.understand("Subject: Topping up with my debit card\n\nHello, I moved money in from my other bank "
                         "yesterday and it is not in my balance yet. When will it show?\n\nRegards, Sam")
    assert [r["intent"] for r in u.intents] == ["balance_not_updated_after_bank_transfer"]


def test_detail_fields_ask_nothing_of_their_own(agent):
    # Read alone, "Beneficiary name: Anil Iyer" is beneficiary_not_allowed; the email asks one thing.
    u = agent.understand("Hello,\n\nI sent £300 to my brother on Monday and he says it still hasn't reached him. "
                         "Can you check?\nBeneficiary name: Anil Iyer\nAmount: £300\n\nThanks,\nRaj")
    assert [r["intent"] for r in u.intents] == ["transfer_not_received_by_recipient"]


@pytest.mark.parametrize("text, reason, sentence", [
    ("Hello,\n\nI paid £40 at a cafe yesterday and was charged twice. This is the third time this has happened and "
     "I want to make a formal complaint.\n\nRegards,\nTom", "wants to make a complaint",
     "This is the third time this has happened and I want to make a formal complaint."),
    ("Agent: thank you for calling Kestrel Bank how can I help\nCustomer: my transfer failed again\n"
     "Customer: honestly just put me through to a manager", "asks for a person",
     "honestly just put me through to a manager"),
    ("Hi there. I have a question about your mortgage rates for first-time buyers. What is the best fixed rate?",
     "out of scope", None),
])
def test_every_escalation_names_the_sentence_that_caused_it(agent, text, reason, sentence):
    u = agent.understand(text)
    assert u.escalate and u.reason.startswith(reason)
    assert u.evidence and u.evidence in text
    if sentence:
        assert u.evidence == sentence


def test_agent_lines_and_courtesies_never_hand_a_call_over(agent):
    call = ("Agent: thank you for calling Kestrel Bank my name's Ellie I'm sorry you've had to wait, let me put you "
            "through to the right person if I can't help\nCustomer: hi um I took out a hundred pounds at a cash "
            "machine and it only gave me eighty\nAgent: okay\nCustomer: so can I get the twenty back")
    u = agent.understand(call)
    assert u.intent == "wrong_amount_of_cash_received" and not u.escalate, u.reason


def test_classify_and_reply_print_intents_and_evidence(cli_env):
    out = run_cli("classify", "My card has not arrived. Also how do I change my PIN?",
                  "I want to speak to a manager now", env=cli_env)
    first, second = (json.loads(line) for line in out.stdout.splitlines())
    assert sorted(r["intent"] for r in first["intents"]) == ["card_arrival", "change_pin"] and first["evidence"] is None
    assert first["intents"][0]["intent"] == first["intent"]
    assert second["escalate"] and second["evidence"] == "I want to speak to a manager now"
    out = run_cli("reply", "I want to speak to a manager now", env=cli_env)
    result = json.loads(out.stdout)
    assert result["escalate"] and result["evidence"] == "I want to speak to a manager now" and result["intents"]


def test_one_line_held_out_queries(agent):
    """The 1,001 Banking77 queries the shipped model was validated on and never trained on, scored here
    rather than read from its metrics.json: accuracy, and right and answered with every escalation reason."""
    held = read_examples(REPO / "data/heldout/intent.jsonl")
    predictions = agent.classifier.classify([e.text for e in held])
    right = [p.top[0].intent == e.intent for p, e in zip(predictions, held)]
    assert sum(right) / len(held) >= ACCURACY_ONE_LINE
    understood = [agent.understand(e.text) for e in held[:300]]
    kept = sum(not u.escalate and u.intent == e.intent for u, e in zip(understood, held))
    assert kept / 300 >= KEPT_ONE_LINE


# name -> {figure: bound}: each set's figures with the shipped model, two messages of slack
# (message_sets.FEWER_IS_BETTER are upper bounds, the rest lower bounds).
# blind_a, blind_b, blind_g, blind_h and mailbox_a were used while developing; blind_c, blind_d, blind_e, blind_f and
# mailbox_b were not (docs/experiments/intent.md says when each was scored).
def _bounds(n: dict[str, tuple[int, int]]) -> dict[str, float]:
    return {f: (k + 2) / total if f in message_sets.FEWER_IS_BETTER else (k - 2) / total for f, (k, total) in n.items()}


WHOLE_MESSAGE_BOUNDS = {
    "blind_a.jsonl": _bounds({"intent right": (94, 96), "ordinary escalated": (1, 70),
                              "ordinary given another request": (4, 70), "both requests found": (24, 26),
                              "hand-over escalated": (30, 30), "out of scope escalated": (24, 24)}),
    "blind_b.jsonl": _bounds({"intent right": (93, 96), "ordinary escalated": (0, 70),
                              "ordinary given another request": (7, 70), "both requests found": (24, 26),
                              "hand-over escalated": (30, 30), "out of scope escalated": (22, 24)}),
    "mailbox_a.mbox": _bounds({"intent right": (39, 41), "ordinary escalated": (3, 35),
                               "ordinary given another request": (5, 35), "both requests found": (4, 6),
                               "hand-over escalated": (5, 5), "out of scope escalated": (4, 4)}),
    "blind_c.jsonl": _bounds({"intent right": (95, 96), "ordinary escalated": (0, 70),
                              "ordinary given another request": (5, 70), "both requests found": (23, 26),
                              "two-request messages escalated": (1, 26), "hand-over escalated": (28, 30),
                              "out of scope escalated": (24, 24)}),
    "blind_d.jsonl": _bounds({"intent right": (91, 96), "ordinary escalated": (2, 70),
                              "ordinary given another request": (6, 70), "both requests found": (23, 26),
                              "two-request messages escalated": (1, 26), "hand-over escalated": (30, 30),
                              "out of scope escalated": (24, 24)}),
    "mailbox_b.mbox": _bounds({"intent right": (55, 57), "ordinary escalated": (2, 49),
                               "ordinary given another request": (5, 49), "both requests found": (8, 8),
                               "hand-over escalated": (7, 7), "out of scope escalated": (6, 6)}),
    "blind_e.jsonl": _bounds({"intent right": (98, 100), "ordinary escalated": (2, 63),
                              "ordinary given another request": (1, 63), "both requests found": (28, 37),
                              "two-request messages escalated": (0, 37), "hand-over escalated": (30, 30),
                              "out of scope escalated": (19, 20)}),
    "blind_f.jsonl": _bounds({"intent right": (98, 101), "ordinary escalated": (2, 63),
                              "ordinary given another request": (2, 63), "both requests found": (33, 38),
                              "two-request messages escalated": (1, 38), "hand-over escalated": (30, 30),
                              "out of scope escalated": (19, 19)}),
    "blind_g.jsonl": _bounds({"intent right": (78, 78), "ordinary escalated": (1, 30),
                              "ordinary given another request": (0, 30), "both requests found": (40, 48),
                              "two-request messages escalated": (0, 48), "hand-over escalated": (42, 42)}),
    "blind_h.jsonl": _bounds({"intent right": (237, 240), "ordinary escalated": (1, 80),
                              "ordinary given another request": (10, 80), "both requests found": (145, 160),
                              "two-request messages escalated": (0, 160)}),
}
ACCURACY_ONE_LINE, KEPT_ONE_LINE = 0.93, 0.925  # measured 0.939 and 0.930


@pytest.mark.parametrize("name", sorted(WHOLE_MESSAGE_BOUNDS))
def test_whole_message_sets_hold_their_figures(agent, name):
    """Each set was scored once as it came; the bounds hold those figures, a message or two below."""
    path = EVAL / name
    if path.suffix == ".mbox":
        pairs = message_sets.mailbox(path, path.with_name(path.stem + "_labels.jsonl"))
        result = message_sets.score([m for _, m in pairs], (message_sets.answered_email(agent, raw) for raw, _ in pairs))
    else:
        messages = message_sets.read_set(path)
        result = message_sets.score(messages, (message_sets.understood(agent, m["text"]) for m in messages))
    for figure, bound in WHOLE_MESSAGE_BOUNDS[name].items():
        rate = result.rate(figure)
        if figure in message_sets.FEWER_IS_BETTER:
            assert rate <= bound, (figure, rate, result.misses[:5])
        else:
            assert rate >= bound, (figure, rate, result.misses[:5])
