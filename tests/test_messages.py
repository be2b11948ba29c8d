"""Whole messages built around one-line queries for training (finetune/messages.py)."""
import random

import pytest

from agent.sentences import AGENT, CONTENT_ROLES, read, split
from finetune.messages import CHANNELS, HELD_OUT_EVERY, Ingredients, MessageBuilder

QUERY, INTENT = "I ordered my card two weeks ago and it still hasn't come", "card_arrival"
OTHER, OTHER_INTENT = "How do I change my PIN?", "change_pin"


@pytest.mark.parametrize("channel", list(CHANNELS))
def test_each_channel_wraps_the_request_and_labels_it(channel):
    for seed in range(20):
        built = MessageBuilder(random.Random(seed)).build([(QUERY, INTENT)], channel)
        assert built.channel == channel and built.intents == [INTENT]
        assert built.labelled and all(intent == INTENT for _, _, intent in built.labelled)
        # every labelled span is customer text, never an agent turn or a courtesy
        content = [s for s in split(built.text) if s.role in CONTENT_ROLES]
        for start, end, _ in built.labelled:
            assert any(s.start < end and start < s.end for s in content), built.text
        if channel == "dialogue":
            assert any(s.role == AGENT for s in split(built.text))
            assert all(line.startswith(("Agent: ", "Customer: ")) for line in built.text.split("\n"))
        if channel == "call":
            assert built.text == built.text.lower() and "?" not in built.text


def test_placeholders_are_filled():
    for seed in range(50):
        built = MessageBuilder(random.Random(seed)).build([(QUERY, INTENT)])
        assert "{" not in built.text and "}" not in built.text, built.text


def test_two_requests_keep_their_own_labels_in_order():
    for seed in range(30):
        built = MessageBuilder(random.Random(seed)).build([(QUERY, INTENT), (OTHER, OTHER_INTENT)], "email")
        assert built.intents == [INTENT, OTHER_INTENT]
        firsts = {intent: min(s for s, _, i in built.labelled if i == intent) for intent in built.intents}
        assert firsts[INTENT] < firsts[OTHER_INTENT]


def test_messages_are_reproducible_from_the_seed():
    make = lambda: [MessageBuilder(random.Random(5)).build([(QUERY, INTENT)]).text for _ in range(3)]  # noqa: E731
    assert make() == make()


def test_framing_keeps_the_whole_message():
    text = "This is the third time I have written and nobody answers. I want to make a formal complaint."
    for seed in range(20):
        framed = MessageBuilder(random.Random(seed)).frame(text)
        assert "formal complaint" in framed.lower()
        assert "formal complaint" in read(framed).text.lower()


def test_later_requests_kept_for_validation_are_never_trained_on():
    written = Ingredients.load().contexts[OTHER_INTENT]["later_requests"]
    held = set(written[HELD_OUT_EVERY - 1::HELD_OUT_EVERY])
    for held_out, allowed in ((False, set(written) - held), (True, held)):
        used = set()
        for seed in range(300):
            built = MessageBuilder(random.Random(seed), held_out=held_out).build(
                [(QUERY, INTENT), (OTHER, OTHER_INTENT)], "chat")
            used |= {s for s in written if s.lower().rstrip(".?!")[1:] in built.text.lower()}
        assert used and used <= allowed
