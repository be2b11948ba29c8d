"""The second-request scorer (agent.requests): its candidates, its features, how it is fitted and saved."""
import numpy as np
import pytest

from agent.intent import IntentHead
from agent.requests import FEATURES, OPENS_NEW_REQUEST, SecondRequests, candidates
from finetune import calibration
from finetune.intent_data import IGNORE, Drawn, Embedded

ANSWERED = np.array([0, 1, 2])  # column 3 is the out-of-scope class


def feature(c, name: str) -> float:
    return float(c.features[FEATURES.index(name)])


def test_each_sentence_offers_its_own_intent_or_its_second_choice():
    """A sentence leaning to the main intent (column 0) or to the out-of-scope class offers its second
    choice (the main request's own sentence too: the scorer weighs how little it asks it); one whose
    second choice is the main intent offers none; a subject line offers none."""
    probs = np.array([0.6, 0.3, 0.05, 0.05])
    parts = np.array([[0.90, 0.05, 0.03, 0.02],   # the main request
                      [0.10, 0.80, 0.05, 0.05],   # another request, its own top intent
                      [0.50, 0.05, 0.40, 0.05],   # leans to the main request; its second choice is offered
                      [0.20, 0.05, 0.05, 0.70],   # out of scope first; second choice is the main intent: none
                      [0.05, 0.05, 0.85, 0.05]])  # the subject line
    texts = ["My card has not arrived.", "Also, can I change my PIN?", "and where can I top up",
             "the weather is nice", "Subject"]
    found = candidates(probs, parts, texts, 0, ANSWERED, askers=np.array([True, True, True, True, False]))
    assert [(c.column, c.part) for c in found] == [(1, 0), (1, 1), (2, 2)]
    main, other, leaning = found
    assert [feature(c, "candidate is the sentence's second choice") for c in found] == [1, 0, 1]
    assert [feature(c, "sentence opens a new request") for c in found] == [0, 1, 1]
    assert [feature(c, "sentence after the main request's") for c in found] == [0, 1, 1]
    assert feature(other, "log p(candidate | sentence)") == pytest.approx(np.log(0.8))
    assert feature(other, "log p(main | sentence)") == pytest.approx(np.log(0.1))
    assert leaning.probability == pytest.approx(0.40)


@pytest.mark.parametrize("text, opens", [
    ("Also, how do I change my PIN?", True), ("And while I have you, is there a fee?", True),
    ("thanks and um also there's a transfer pending", True), ("2) can i keep yen in my account", True),
    ("Secondly, what is the limit?", True), ("PS: the card is a Visa", True),
    ("Andrew here, my card is lost", False), ("Anotherly odd charge", False), ("How do I top up?", False)])
def test_sentences_that_open_a_new_request(text, opens):
    assert bool(OPENS_NEW_REQUEST.match(text)) == opens


def message(parts: list[np.ndarray], label: int, part_labels: list[int]) -> tuple[Drawn, np.ndarray, np.ndarray]:
    texts = ["Also, can I do that?" if k else "My card has not come." for k in range(len(parts))]
    text = " ".join(texts)
    spans, pos = [], 0
    for t in texts:
        spans.append((pos, pos + len(t)))
        pos += len(t) + 1
    vectors = np.stack(parts).astype(np.float32)
    return Drawn(text, label, spans, part_labels, [True] * len(parts)), vectors.mean(axis=0), vectors


def test_the_scorer_is_fitted_within_the_budget_of_false_second_requests():
    """On messages built from sentences whose embeddings point at their intents, the fitted scorer finds
    the second request of most two-request messages and gives at most the budget of one-request messages
    another; the threshold is one of those tried, and the head keeps the scorer."""
    rng = np.random.default_rng(3)
    weight = np.eye(4, 6, dtype=np.float32) * 8
    head = IntentHead(["a", "b", "c", "out_of_scope"], weight, np.zeros(4, np.float32), 1.0, 0.0, "enc", {})

    def sentence(intent: int, noise: float = 0.25) -> np.ndarray:  # one that asks ``intent``, unsure at times
        return weight[intent] / 8 + rng.normal(scale=noise, size=6)

    singles, doubles = [], []
    for n in range(300):
        first, second = n % 3, (n + 1 + n % 2) % 3
        singles.append(message([sentence(first), sentence(first)], first, [first, first]))
        doubles.append(message([sentence(first), sentence(second)], IGNORE, [first, second]))

    def as_embedded(rows):
        return Embedded([d for d, _, _ in rows], np.stack([v for _, v, _ in rows]), [p for _, _, p in rows])

    figures = calibration.fit_second_requests(head, as_embedded(singles), as_embedded(doubles), budget=0.05)
    assert head.second_requests is not None and head.second_requests.threshold in calibration.SECOND_REQUEST_THRESHOLDS
    assert figures["single_with_extra"] <= 0.05 and figures["two_requests_both_found"] >= 0.7
    texts = ["My card has not come.", "Also, can I do that?"]
    two = np.stack([weight[0] / 8, weight[2] / 8]).astype(np.float32)
    one = np.stack([weight[0] / 8, weight[0] / 8]).astype(np.float32)
    for parts, wanted in ((two, [0, 2]), (one, [0])):
        probs = head.probabilities(parts.mean(axis=0, keepdims=True))[0]
        assert [j for j, _, _ in head.requests(probs, head.probabilities(parts), None, texts)] == wanted


def test_a_saved_model_keeps_its_scorer_and_an_older_one_finds_the_main_request(tmp_path):
    weight = np.eye(3, 4, dtype=np.float32)
    scorer = SecondRequests(np.linspace(-1, 1, len(FEATURES)), 0.5, 0.6)
    head = IntentHead(["a", "b", "c"], weight, np.zeros(3, np.float32), 1.0, 0.0, "enc", {}, second_requests=scorer)
    head.save(tmp_path)
    loaded = IntentHead.load(tmp_path)
    assert np.allclose(loaded.second_requests.weight, scorer.weight) and loaded.second_requests.threshold == 0.6
    assert SecondRequests.from_config({"features": ["another feature"], "weight": [1.0], "bias": 0, "threshold": 0.5}) is None
    head.second_requests = None
    probs, parts = np.array([0.7, 0.2, 0.1]), np.array([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05]])
    assert [j for j, _, _ in head.requests(probs, parts, None, ["My card.", "Also, my PIN?"])] == [0]
