"""Understanding and grounded drafting through the Agent, on the shipped model and knowledge base."""
import re

import pytest

from agent.compose import HOLDING_REPLY
from agent.knowledge import KnowledgeBase
from agent.types import AgentError, Message


def test_knowledge_base_covers_every_intent_the_model_knows(agent):
    kb = agent.knowledge
    head = agent.classifier.head
    answered = {head.labels[i] for i in head.in_scope}  # not the out-of-scope class, which is escalated
    assert {e.intent for e in kb.entries} == answered and len(answered) == 77
    assert kb.business["name"] == "Kestrel Bank"


def test_email_reply_is_grounded_and_personal(agent):
    reply = agent.handle(Message("I was charged twice for £42.10 at the cafe yesterday", "email",
                                 customer_name="Anna"))
    entry = agent.knowledge.for_intent("transaction_charged_twice")[0]
    assert reply.intent == "transaction_charged_twice" and not reply.escalate
    assert reply.text.startswith("Hi Anna,\n\n")
    assert entry.answer in reply.text and "£42.10" in reply.text
    assert reply.text.endswith("Kind regards,\nKestrel Bank Support")
    assert reply.passages[0] == entry.answer and len(reply.passages) == 3 and reply.source == "composer"


@pytest.mark.parametrize("when, said", [("on 3 March", "ordering it on 3 March,"), ("on Monday", "ordering it on Monday,"),
                                        ("yesterday", "ordering it yesterday,"), ("last week", "ordering it last week,"),
                                        ("two weeks ago", "ordering it two weeks ago,"),
                                        ("on the 5th", "ordering it on the 5th,")])
def test_the_customers_date_reads_as_they_said_it(agent, when, said):
    reply = agent.handle(Message(f"My new card still hasn't arrived, I ordered it {when}", "email"))
    assert reply.intent == "card_arrival" and said in reply.text and " on on " not in reply.text


def test_a_deadline_is_not_taken_for_the_day_it_happened(agent):
    reply = agent.handle(Message("My new card still hasn't arrived and I need it by Friday", "email"))
    assert reply.intent == "card_arrival" and "Friday" not in reply.text
    reply = agent.handle(Message("I ordered my card on 3 March and need it by Friday, it hasn't arrived", "email"))
    assert "ordering it on 3 March," in reply.text and "Friday" not in reply.text


def test_every_number_in_a_draft_comes_from_the_customer_or_the_knowledge_base(agent):
    customer = "My card payment of €19.99 on 2 May at the shop was declined, card ending 4411"
    reply = agent.handle(Message(customer, "email"))
    allowed = {n for text in [customer, *reply.passages, agent.knowledge.business["phone"]] for n in numbers(text)}
    assert numbers(reply.text) and numbers(reply.text) <= allowed, (numbers(reply.text) - allowed, reply.text)


def numbers(text: str) -> set[str]:
    """The whole numbers written in ``text`` ("19.99", "4411", "2"): a "4" is not found inside "4411"."""
    return set(re.findall(r"\d+(?:[.,]\d+)*", text))


def test_whole_numbers_are_compared_not_digits():
    assert numbers("card ending 4411, €19.99 on 2 May") == {"4411", "19.99", "2"}
    assert not numbers("a fee of £4") <= numbers("card ending 4411")


def test_spoken_reply_is_one_paragraph(agent):
    reply = agent.handle(Message("I ordered a card two weeks ago and it has not arrived", "call"))
    assert "\n" not in reply.text and reply.text.startswith("Hello, thank you for calling.")


@pytest.mark.parametrize("text", ["What's the weather like in Lisbon on Saturday?", "banana trampoline seventeen"])
def test_out_of_scope_messages_escalate_with_a_holding_reply(agent, text):
    reply = agent.handle(Message(text, "email"))
    assert reply.escalate and reply.reason.startswith("out of scope")
    assert HOLDING_REPLY in reply.text and reply.passages == []


def test_empty_message_escalates(agent):
    reply = agent.handle(Message("   ", "call"))
    assert reply.escalate and reply.reason.startswith("empty message")


@pytest.mark.parametrize("yaml_text, message", [
    ("entries: [{intent: x}]", "needs 'intent' and 'answer'"),
    ("entries: [{intent: x, answer: 'Costs {amount}.'}]", "must not contain placeholders"),
    ("entries: [{intent: x, answer: 'Free.', facts: ['£5']}]", "does not appear in its answer"),
    ("entries: [{intent: x, answer: 'Free.', personal: {name: 'Hi {name}'}}]", "personal 'name' must be"),
    ("business: [", "not valid YAML"),
])
def test_knowledge_base_errors_are_specific(tmp_path, yaml_text, message):
    path = tmp_path / "kb.yaml"
    path.write_text(yaml_text)
    with pytest.raises(AgentError, match=message):
        KnowledgeBase.load(path)


def test_edited_knowledge_base_reaches_the_next_draft(tmp_path, settings):
    from agent.pipeline import Agent

    text = (KnowledgeBase.load().for_intent("card_arrival")[0].answer)
    source = (tmp_path / "kb.yaml")
    source.write_text("entries:\n  - intent: card_arrival\n    answer: " + text.replace("3 to 5", "2 to 4") + "\n")
    reply = Agent(settings.replace(knowledge_base=str(source))).handle(
        Message("my card still has not arrived", "email"))
    assert "2 to 4 working days" in reply.text and "3 to 5" not in reply.text
