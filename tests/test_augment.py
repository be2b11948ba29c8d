"""The entity noise that intent training adds (finetune/augment.py) and the dataset that draws it."""
import json
import random
from types import SimpleNamespace

import numpy as np
import pytest

from agent.encoder import load_tokenizer
from agent.entities import extract, iban_valid
from agent.intent import OUT_OF_SCOPE
from agent.types import AgentError
from finetune.augment import BBANS, _iban, add_entity_noise
from finetune.intent_data import IGNORE, LengthGroupedEpochs, TrainingTexts, written_messages
from finetune.intent_model import training_extras

QUERY = "Why has my transfer not arrived yet?"


def test_noise_keeps_the_query_and_adds_details_the_detectors_find():
    rng = random.Random(3)
    noisy = [add_entity_noise(QUERY, rng) for _ in range(300)]
    assert all(QUERY.rstrip("?") in text for text in noisy)
    assert all(len(text) > len(QUERY) + 5 for text in noisy)
    assert len(set(noisy)) > 290  # values and wording vary: not a handful of templates to memorise
    # Most added details are entities the agent reads (the rest: names, sign-offs, "last Tuesday").
    with_entities = np.mean([bool(extract(text)) for text in noisy])
    assert with_entities > 0.7
    kinds = {e.kind for text in noisy for e in extract(text)}
    assert {"amount", "date", "email", "phone", "reference", "card_last4", "account_number", "sort_code",
            "iban"} <= kinds


def test_added_ibans_pass_the_check_real_ones_do():
    rng = random.Random(5)
    ibans = [_iban(rng) for _ in range(500)]
    assert all(iban_valid(iban) for iban in ibans)
    assert {iban[:2] for iban in ibans} == set(BBANS)
    assert all(len(iban.replace(" ", "")) == 4 + sum(n for _, n in BBANS[iban[:2]]) for iban in ibans)


def test_noise_is_reproducible_from_its_seed():
    first = [add_entity_noise(QUERY, random.Random(7)) for _ in range(3)]
    assert first == [add_entity_noise(QUERY, random.Random(7)) for _ in range(3)]


def test_noisy_examples_add_details_to_a_share_and_keep_labels():
    tokenizer = load_tokenizer("all-MiniLM-L6-v2")
    clean = tokenizer(QUERY)["input_ids"]
    texts, labels = [QUERY] * 400, np.arange(400) % 3
    names = ["card_arrival", "change_pin", "exchange_rate"]
    none = TrainingTexts(texts, labels, names, tokenizer, seed=1, message_share=0.0, entity_noise=0.0)
    assert all(none[i]["input_ids"] == clean and none[i]["labels"] == labels[i] for i in range(len(none)))
    half = TrainingTexts(texts, labels, names, tokenizer, seed=1, message_share=0.0, entity_noise=0.5)
    changed = [half[i]["input_ids"] != clean for i in range(len(half))]
    assert 0.4 < np.mean(changed) < 0.6
    assert [half[i]["labels"] for i in range(6)] == [0, 1, 2, 0, 1, 2]
    # Drawn afresh for each epoch, from the seed and the epoch alone: a second epoch sees other
    # details, and drawing an epoch again (a resumed run) gives the same ones.
    first = [half[i]["input_ids"] for i in range(20)]
    half.draw(1)
    assert [half[i]["input_ids"] for i in range(20)] != first
    half.draw(0)
    assert [half[i]["input_ids"] for i in range(20)] == first
    drawn = half.input
    half.draw(0)  # the sampler's first epoch, already drawn when the dataset was made
    assert half.input is drawn


def test_batches_group_similar_lengths_and_cover_every_example_once():
    tokenizer = load_tokenizer("all-MiniLM-L6-v2")
    rng = random.Random(2)
    texts = [" ".join(["word"] * rng.randint(2, 60)) for _ in range(1000)]  # 1000 = 31 batches of 32 + 8
    sampler = LengthGroupedEpochs(TrainingTexts(texts, np.zeros(1000, int), ["a"], tokenizer, seed=4,
                                                message_share=0.0, entity_noise=0.5), 32, seed=4, group=10)
    def padding_efficiency(order: list[int]) -> float:
        lengths = np.array([len(sampler.examples[i]["input_ids"]) for i in order])
        return lengths.sum() / sum(lengths[i:i + 32].max() * len(lengths[i:i + 32]) for i in range(0, 1000, 32))

    orders = []
    for epoch in (0, 1, 0):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert sorted(order) == list(range(1000))
        assert padding_efficiency(order) > 0.85 > padding_efficiency(list(np.random.default_rng(epoch).permutation(1000))) + 0.25
        orders.append(order)
    assert orders[0] != orders[1] and orders[0] == orders[2]
    assert list(sampler) != orders[0]  # a loader that never calls set_epoch still gets the next epoch
    # The batches come in random order, not longest first in each run: that would be a curriculum.
    means = [np.mean([len(sampler.examples[i]["input_ids"]) for i in orders[0][j:j + 32]]) for j in range(0, 992, 32)]
    assert np.mean(np.diff(means) < 0) < 0.75


def test_whole_messages_teach_the_message_and_the_parts_that_ask():
    """A share of the queries come inside whole messages: a single request labels the message and its
    parts; a message with two requests labels only its parts, each with its own request's intent."""
    tokenizer = load_tokenizer("all-MiniLM-L6-v2")
    names = ["card_arrival", "change_pin"]
    texts = ["my card still hasn't arrived", "how do I change my PIN?"] * 100
    labels = np.arange(200) % 2
    data = TrainingTexts(texts, labels, names, tokenizer, seed=3, message_share=1.0, two_share=0.5, entity_noise=0.0)
    drawn = data.drawn
    two = [d for d in drawn if d.label == IGNORE]
    assert 0.3 < len(two) / len(drawn) < 0.7
    asked = [{label for label in d.part_labels if label != IGNORE} for d in two]
    assert all(a and a <= {0, 1} for a in asked)
    # Each request is a part of its own, except where speech runs them together with nothing between
    assert np.mean([a == {0, 1} for a in asked]) > 0.75
    for d, label in zip(drawn, labels):
        if d.label != IGNORE:
            assert d.label == label and {p for p in d.part_labels if p != IGNORE} == {label}
    assert np.mean([len(d.text.split()) for d in drawn]) > 4 * len(texts[0].split())  # whole messages, mostly
    item = data[0]
    assert item["parts"] and all(0 < s < e <= len(item["input_ids"]) for s, e, _ in item["parts"])


def _write(tmp_path, rows) -> str:
    path = tmp_path / "written.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


TWO = {"text": "Subject: two things\n\nHi,\n\nMy card still hasn't arrived. Also, how do I change my PIN?\n\nThanks,\nSam",
       "kind": "two_requests", "requests": [{"intent": "card_arrival", "sentence": "My card still hasn't arrived."},
                                            {"intent": "change_pin", "sentence": "Also, how do I change my PIN?"}]}


def _texts(drawn) -> list[str]:
    return [drawn.text[s:e] for s, e in drawn.spans]


def test_written_messages_label_the_sentence_that_asks_each_request(tmp_path):
    names = ["card_arrival", "change_pin"]
    one = {"text": "Hello. I moved house in May. Where is my card?", "kind": "ordinary",
           "requests": [{"intent": "card_arrival", "sentence": "Where is my card?"}]}
    both_in_one = {"text": "where's my card and how do i change my pin", "kind": "two_requests",
                   "requests": [{"intent": "card_arrival", "sentence": "where's my card and how do i change my pin"},
                                {"intent": "change_pin", "sentence": "where's my card and how do i change my pin"}]}
    path = _write(tmp_path, [TWO, one, both_in_one, TWO])
    two, single, joined = written_messages(path, names)  # the fourth line is held out for validation
    parts = dict(zip(_texts(two), two.part_labels))
    assert parts["My card still hasn't arrived."] == 0 and parts["Also, how do I change my PIN?"] == 1
    assert two.label == IGNORE  # a message with two requests teaches its parts only
    assert single.label == 0 and {p for p in single.part_labels if p != IGNORE} == {0}
    assert dict(zip(_texts(single), single.part_labels))["I moved house in May."] == IGNORE
    assert joined.label == IGNORE and set(joined.part_labels) == {IGNORE}  # one sentence asking two: no label
    assert [d.text for d in written_messages(path, names, held_out=True)] == [two.text]
    assert written_messages(path, ["card_arrival"]) == [single]  # a model without change_pin learns the rest


@pytest.mark.parametrize("row, problem", [
    ({"text": "Where is my card?", "kind": "ordinary"}, "needs 'text' and 'requests'"),
    ({"text": "Where is my card?", "requests": [{"intent": "card_arrival", "sentence": "Not in the text"}]},
     "needs 'text' and 'requests'"),
    ({"text": "Where is my card?", "requests": []}, "no requests"),
])
def test_a_bad_written_message_names_its_line(tmp_path, row, problem):
    with pytest.raises(AgentError, match=f"written.jsonl:2: {problem}"):
        written_messages(_write(tmp_path, [TWO, row]), ["card_arrival", "change_pin"])


def test_written_messages_are_read_every_epoch_beside_the_built_ones(tmp_path):
    tokenizer = load_tokenizer("all-MiniLM-L6-v2")
    names = ["card_arrival", "change_pin"]
    written = written_messages(_write(tmp_path, [TWO]), names)
    data = TrainingTexts(["where is my card"] * 10, np.zeros(10, int), names, tokenizer, seed=1, extras=written * 2)
    assert len(data) == 12 and [d.text for d in data.drawn[-2:]] == [written[0].text] * 2
    data.draw(1)
    assert len(data) == 12 and data.drawn[-1] is written[0]


def test_out_of_scope_requests_for_training_only_are_read_as_they_are_after_the_written_messages(tmp_path):
    more = tmp_path / "near.jsonl"
    more.write_text(json.dumps({"text": "How do I renew my library card?"}) + "\n", encoding="utf-8")
    args = SimpleNamespace(written=_write(tmp_path, [TWO]), written_repeat=2, oos_train_only=str(more))
    extra = training_extras(args, ["card_arrival", "change_pin", OUT_OF_SCOPE])
    assert [d.text for d in extra][:2] == [extra[0].text] * 2 and "change my PIN" in extra[0].text
    assert (extra[2].text, extra[2].label) == ("How do I renew my library card?", 2)
    assert len(training_extras(args, ["card_arrival", "change_pin"])) == 2  # no out-of-scope class: none to learn
