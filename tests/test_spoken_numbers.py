"""Numbers in a transcript as people said them: codes said digit by digit joined, amounts keep their pence."""
import pytest

from agent.entities import extract
from channels.spoken_numbers import normalise


@pytest.mark.parametrize("heard, written", [
    ("the order number is 4-8-2-1-3.", "the order number is 48213."),
    ("It is 7, 3, 0, 9, 1, 6.", "It is 730916."),
    ("It ends 6 0 4 8.", "It ends 6048."),
    ("four eight two one three", "48213"),
    ("double five two one", "5521"),
    ("oh seven seven zero zero", "07700"),
    ("page 1-2-3", "page 123"),  # three digits joined by hyphens are one number too
    ("my refund of 42 pounds 50 has not come", "my refund of £42.50 has not come"),
    ("it was 19 pounds 99 at a supermarket", "it was £19.99 at a supermarket"),
    ("the fee was 1 pound 20, is that right?", "the fee was £1.20, is that right?"),
    ("forty two pounds fifty", "£42.50"),
    ("twenty dollars and five cents", "$20.05"),
    ("£42 and 50p", "£42.50"),
])
def test_said_numbers_are_written_as_one(heard, written):
    assert normalise(heard) == written


@pytest.mark.parametrize("text", [
    "one two three", "I have 2, 3 or 4 cards", "between 3 and 5 working days", "call 0800 555 0199",
    "I paid 20 pounds 2 weeks ago", "it costs 5 pounds a month", "version 1.2.3.4", "£19.99 at a shop",
    "twenty pounds, fifty times", "the 60 pounds will be back in 3 days", "card ending 4217",
])
def test_other_numbers_are_left_alone(text):
    assert normalise(text) == text


def test_an_amount_said_with_pence_keeps_its_value():
    """Whisper's "42 pounds 50" reads as £42; written as one it is £42.50."""
    assert [e.value for e in extract("a refund of 42 pounds 50") if e.kind == "amount"] == ["£42"]
    assert [e.value for e in extract(normalise("a refund of 42 pounds 50")) if e.kind == "amount"] == ["£42.50"]
