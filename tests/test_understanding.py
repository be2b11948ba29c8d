"""Sentiment, hand-over cues, out-of-scope detection and the escalation they drive."""
import numpy as np
import pytest

from agent.compose import APOLOGY
from agent.intent import OutOfScope
from agent.handover import handover_reason
from agent.sentiment import sentiment
from agent.types import Message


@pytest.mark.parametrize("text, reason", [
    ("I want to speak to a real person", "asks for a person"),
    ("Can I talk to a manager please", "asks for a person"),
    ("Please put me through to someone who can help", "asks for a person"),
    ("Is there an actual human there?", "asks for a person"),
    ("get me a manager", "asks for a person"),
    ("Can I speak to the supervisor?", "asks for a person"),
    ("I need a human agent, not a bot", "asks for a person"),
    ("Representative, please.", "asks for a person"),
    ("Please escalate this to your complaints team", "wants to make a complaint"),
    ("I will be contacting my lawyer about this transfer", "legal or regulatory threat"),
    ("I'm going to report you to the Financial Conduct Authority", "legal or regulatory threat"),
    ("This is ABSOLUTELY RIDICULOUS, third time I am asking!!! Useless bank.", "angry customer"),
    ("I am furious, you took my money", "angry customer"),
    ("This bank is a total joke", "angry customer"),  # VADER alone reads this as positive
    ("I'm sick and tired of waiting for my refund.", "angry customer"),
    ("This is the third time I'm writing and still nothing. Terrible service.", "angry customer"),
    ("Why is this taking so long?? I'm really annoyed", "angry customer"),
    ("You stole my money, give it back now", "angry customer"),
    ("Is there a person I can talk to?", "asks for a person"),
    ("I need to talk to a customer service representative", "asks for a person"),
    ("connect me with an operator", "asks for a person"),
    ("I don't want to talk to a machine", "asks for a person"),
    ("Stop sending me bots", "asks for a person"),
    ("Can I speak to your fraud department?", "asks for a person"),
    ("Can someone give me a call about this?", "asks for a person"),
    ("I would appreciate it if a customer service representative could contact me", "asks for a person"),
    ("need to speak with customer support staff about atm not giving cash", "asks for a person"),
    ("CLASS ACTION. that's where this is heading with these hidden fees", "legal or regulatory threat"),
    ("I'll get a chargeback through the courts if I have to", "legal or regulatory threat"),
    ("Formal notice: I intend to bring a claim for the losses caused by your delayed transfer", "legal or regulatory threat"),
    ("Sue you? I will, if this is not fixed", "legal or regulatory threat"),
    ("i have had it with you. the card never arrived", "angry customer"),
    ("honestly screw this bank", "angry customer"),
    ("Your so called security team is a bunch of idiots", "angry customer"),
    ("you lot are a shambles", "angry customer"),
    ("I'd like to make a complaint about how my dispute was handled", "wants to make a complaint"),
    ("Please pass this to your complaints team", "wants to make a complaint"),
    ("I'm making a subject access request under GDPR", "legal or regulatory threat"),
    ("I will go to the press about this", "threatens to go public"),
    ("I'll be posting about this on Twitter", "threatens to go public"),
    ("Expect a one-star review", "threatens to go public"),
    ("Seriously disappointed with how this was handled", "angry customer"),
    ("I have written three times and nobody answers", "angry customer"),
])
def test_handover_cues(text, reason):
    assert handover_reason(text, sentiment(text)).startswith(reason)


@pytest.mark.parametrize("text", [
    "My card has not arrived yet", "I lost my card", "I was charged twice, please fix it",
    "Thanks so much, that was really helpful!", "How do I top up by bank transfer?",
    "Can another person use my card?", "I need a new card for my agent in Spain",
    # Reports of a problem, not of a mood: VADER alone scores each -0.6 or below ("stolen", "wrong", "blocked").
    "My card has been lost / stolen", "How do I report my card as lost or stolen?", "Someone stole my card!",
    "Why was the exchange rate so wrong when I bought something!", "I logged in wrong and am blocked, how do I log in?",
    "Tell me a joke", "Why does my card keep getting declined? I thought I had enough money in there",
    # Talking about people and machines without asking for one.
    "Can I talk to you about my card payment being declined?", "I want to send money to someone abroad",
    "The cash machine did not give me my money", "Who do I talk to about the ATM swallowing my card?",
    "I transferred money to the wrong person", "How do I add another person to my account?",
    "Call me at 07700 900123 about my card delivery", "Not happy that my transfer is still pending",
    "I'm a bit disappointed my card hasn't arrived yet",
    "I sent £50 to my sister Sue yesterday, has it gone through?",
    "My lawyer needs a copy of my bank statements for a house purchase, how can I download them?",
    "Do I need to speak to a representative to change my pin?", "Someone called me claiming to be from the bank",
    "What is wrong with my card? It keeps getting declined",
])
def test_ordinary_requests_are_not_handed_over(text):
    assert handover_reason(text, sentiment(text)) is None


def test_sentiment_labels():
    assert sentiment("Thank you, that was brilliant").label == "positive"
    assert sentiment("my card has not arrived").label == "neutral"
    assert sentiment("This is terrible and I am very upset").label == "negative"


def test_angry_message_escalates_with_reason_and_apology(agent):
    reply = agent.handle(Message("This is a disgrace!!! I was charged twice for £20 and nobody helps", "email"))
    assert reply.escalate and reply.reason.startswith("angry customer")
    assert reply.sentiment["label"] == "negative" and APOLOGY in reply.text


def test_sarcasm_handed_over_as_anger_reads_as_negative(agent):
    # VADER scores this +0.44 ("thanks"); the customer is handed over as angry, so the label says so.
    u = agent.understand("Thanks for nothing. Your 'instant' transfer has taken a week.")
    assert u.reason.startswith("angry customer")
    assert u.sentiment == {"label": "negative", "score": 0.44, "source": "hand-over"}
    plain = agent.understand("Perfect, thank you!")
    assert plain.sentiment["label"] == "positive" and plain.sentiment["source"] == "vader"


def test_upset_but_answerable_customer_gets_an_apology_and_the_answer(agent):
    reply = agent.handle(Message("I'm a bit worried, my card still has not arrived", "email"))
    assert not reply.escalate and APOLOGY in reply.text and reply.passages[0] in reply.text


@pytest.mark.parametrize("text", ["What's the weather going to be like in Lisbon tomorrow?",
                                  "Play some relaxing jazz music", "How long should I boil an egg?"])
def test_out_of_scope_queries_escalate(agent, text):
    u = agent.understand(text)
    assert u.escalate and u.reason.startswith(("out of scope", "low confidence"))


def test_assistant_requests_from_other_domains_escalate(agent):
    """data/out_of_scope/assistant_requests.txt: 200 requests in the style of CLINC150's other domains
    (travel, kitchen, home, auto, utility, work, small talk, and its out-of-scope questions), written by
    a writer who had not seen the model: 198 escalated (the issue's target: 85%); 184 of them as out of
    scope, the rest with a hand-over reason."""
    from pathlib import Path

    queries = (Path(__file__).parents[1] / "data/out_of_scope/assistant_requests.txt").read_text().splitlines()
    escalated = [agent.understand(q).escalate for q in queries if q.strip()]
    assert len(escalated) == 200 and sum(escalated) >= 0.97 * len(escalated)


def test_mahalanobis_distance_matches_direct_formula():
    rng = np.random.default_rng(0)
    x, labels = rng.normal(size=(200, 5)), rng.integers(0, 3, 200)
    oos = OutOfScope.fit(x, labels)
    q = rng.normal(size=(4, 5)).astype(np.float32)
    direct = [min(float((v - m) @ oos.precision @ (v - m)) for m in oos.means) for v in q]
    assert np.allclose(oos.distance(q), direct, rtol=1e-4)
    assert oos.distance(oos.means[:1] + 0)[0] < 1e-3 < oos.distance(oos.means[:1] + 10)[0]


def test_out_of_scope_score_sums_standardised_distance_and_energy():
    rng = np.random.default_rng(0)
    x, labels = rng.normal(size=(300, 5)).astype(np.float32), rng.integers(0, 3, 300)
    logits = rng.normal(size=(300, 3)).astype(np.float32)
    oos = OutOfScope.fit(x, labels)
    assert np.array_equal(oos.score(x, logits), oos.distance(x))  # not standardised yet: the distance alone
    oos.fit_scale(x, logits)
    assert abs(oos.score(x, logits).mean()) < 1e-3  # each measure has mean 0 on the rows it was fitted on
    one = x[:1]
    assert oos.score(one, np.zeros((1, 3)))[0] > oos.score(one, np.array([[9.0, 0, 0]]))[0]  # no intent fires
    assert oos.score(one * 20, logits[:1])[0] > oos.score(one, logits[:1])[0]  # far from every intent
