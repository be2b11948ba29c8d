import pytest

from agent.entities import extract, luhn_valid, mask_pii


def kinds(text):
    return [(e.kind, e.value) for e in extract(text)]


@pytest.mark.parametrize("text, expected", [
    ("I paid £25.50 on 3 March for order ABC-12345",
     [("amount", "£25.50"), ("date", "3 March"), ("reference", "ABC-12345")]),
    ("declined for 1,200 euros yesterday", [("amount", "€1,200"), ("date", "yesterday")]),
    ("sent $3k on Monday", [("amount", "$3,000"), ("date", "Monday")]),
    ("I paid 1k dollars, then 2k euro", [("amount", "$1,000"), ("amount", "€2,000")]),
    ("200 bucks and a 50p fee", [("amount", "$200"), ("amount", "£0.50")]),
    ("my ref is #88812, tracking number 1Z999AA10123456784", [("reference", "88812"),
                                                              ("reference", "1Z999AA10123456784")]),
    # An ordinal is a date after a preposition, not before a noun ("the 3rd time I've called").
    ("paid two days ago, again on the 5th and on the 3rd of May 2024, the 3rd time; since the 21st",
     [("date", "two days ago"), ("date", "the 5th"), ("date", "3rd of May 2024"), ("date", "the 21st")]),
    ("on the 2nd attempt, after the 4th payment, a few weeks ago", [("date", "a few weeks ago")]),
    ("USD 40 fee", [("amount", "$40")]),
    ("50 CHF was taken", [("amount", "50 CHF")]),
    ("my card ending in 4821 was declined", [("card_last4", "4821")]),
    ("the last four digits are 9921", [("card_last4", "9921")]),
    ("my card ****1234 and xxxx-xxxx-xxxx-5678", [("card_last4", "1234"), ("card_last4", "5678")]),
    ("iban gb29 nwbk 6016 1331 9268 19", [("iban", "GB29NWBK60161331926819")]),
    ("I paid yesterday afternoon and again this morning", [("date", "yesterday afternoon"), ("date", "this morning")]),
    ("order number 48213 not here since 12/10/2024", [("reference", "48213"), ("date", "12/10/2024")]),
    ("write to jo.smith@example.co.uk", [("email", "jo.smith@example.co.uk")]),
    ("call +44 20 7946 0958 or 07700 900123", [("phone", "+44 20 7946 0958"), ("phone", "07700 900123")]),
    ("to GB82 WEST 1234 5698 7654 32 please", [("iban", "GB82WEST12345698765432")]),
    # Decimal commas are decimals, not thousands: the value must not silently lose the cents.
    ("paid € 45,99 then EUR 1.234,56 and 1 234,50 €", [("amount", "€45.99"), ("amount", "€1,234.56"),
                                                      ("amount", "€1,234.50")]),
    ("€1.000 then £1.50, $1 234.56 and €2.500.", [("amount", "€1,000"), ("amount", "£1.50"),
                                                 ("amount", "$1,234.56"), ("amount", "€2,500")]),
    ("a 30€ fee and 2.50$ more, not the 5 of 5 $10 notes", [("amount", "€30"), ("amount", "$2.50"),
                                                             ("amount", "$10")]),
    ("call (415) 555-0134, 415-555-0199 or +1 212.555.0100", [("phone", "(415) 555-0134"),
                                                               ("phone", "415-555-0199"), ("phone", "+1 212.555.0100")]),
    ("ring 1-800-555-0199 or 1 (415) 555-2671", [("phone", "1-800-555-0199"), ("phone", "1 (415) 555-2671")]),
    ("the last four digits: 5678, since 2026/03/12", [("card_last4", "5678"), ("date", "2026/03/12")]),
    ("to account number 12345678, sort code 20 00 00, my customer number is 408292",
     [("account_number", "12345678"), ("sort_code", "20-00-00"), ("reference", "408292")]),
    ("acct: 87654321 sort code: 40-11-62 (not sort code 40-1162 or account 1234)",
     [("account_number", "87654321"), ("sort_code", "40-11-62")]),
])
def test_entities(text, expected):
    assert kinds(text) == expected


def test_card_numbers_are_luhn_checked_and_never_echoed():
    assert kinds("card 4111 1111 1111 1111") == [("card_number", "**** 1111")]
    assert kinds("ticket 1234 5678 9012 3456") == []  # 16 digits, fails Luhn: not a card
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")


def test_invalid_iban_checksum_is_not_an_iban():
    assert all(k != "iban" for k, _ in kinds("GB00 WEST 1234 5698 7654 32"))


def test_mask_pii_keeps_amounts_and_references():
    text = ("Card 4111-1111-1111-1111, IBAN DE89 3704 0044 0532 0130 00, mail me at a.b@c.org or "
            "+49 30 1234567; refund £42.10 for order ZX-99812 to account 12345678, sort code 20-00-00")
    masked = mask_pii(text)
    assert masked == ("Card [CARD_NUMBER], IBAN [IBAN], mail me at [EMAIL] or [PHONE]; "
                      "refund £42.10 for order ZX-99812 to account [ACCOUNT_NUMBER], sort code [SORT_CODE]")
