"""Messages read as sentences with roles (agent/sentences.py)."""
from agent.sentences import AGENT, CONTENT, DETAIL, GREETING, QUOTED, SIGN_OFF, SIGNATURE, SUBJECT, THANKS, read, split

EMAIL = """Subject: Card not here yet

Hi team,

I hope you are well. I ordered a replacement card on 3 March after my
old one expired, and it still has not arrived. Could you check what has
happened to it?

Thanks in advance.

Kind regards,
Margaret Ellery
07700 900123

On 2 March, Kestrel Bank Support <support@kestrel.example> wrote:
> Thank you for contacting Kestrel Bank.
> Your new card is on its way.
"""


def roles(text):
    return [(s.role, s.text) for s in split(text)]


def test_an_email_is_read_by_its_parts():
    got = roles(EMAIL)
    assert got[0] == (SUBJECT, "Card not here yet")
    assert got[1] == (GREETING, "Hi team,")
    assert got[2] == (GREETING, "I hope you are well.")
    # the hard-wrapped sentences are whole again
    assert got[3] == (CONTENT, "I ordered a replacement card on 3 March after my\n"
                               "old one expired, and it still has not arrived.")
    assert got[4] == (CONTENT, "Could you check what has\nhappened to it?")
    assert got[5] == (THANKS, "Thanks in advance.")
    assert got[6] == (SIGN_OFF, "Kind regards,")
    assert got[7:9] == [(SIGNATURE, "Margaret Ellery"), (SIGNATURE, "07700 900123")]
    assert got[9][0] == QUOTED and "Your new card is on its way" in got[9][1]


def test_offsets_point_into_the_message():
    for s in split(EMAIL):
        assert EMAIL[s.start:s.end].strip() == s.text.strip()


def test_what_the_model_reads_is_the_customers_own_sentences():
    reading = read(EMAIL)
    assert reading.text == ("Card not here yet I ordered a replacement card on 3 March after my\n"
                            "old one expired, and it still has not arrived. Could you check what has\nhappened to it?")
    assert [reading.text[a:b] for a, b in reading.spans] == [p.text for p in reading.parts]


def test_a_chat_s_lines_are_not_taken_for_hard_wraps():
    chat = ("hey so i want to get a virtual card in the app for online shopping\n"
            "and once i have it can i add that to google pay on my android?")
    assert [s.text for s in split(chat)] == chat.split("\n")


def test_a_transcript_keeps_only_the_customers_turns():
    call = ("Agent: thank you for calling Kestrel Bank my name is Priya how can I help\n"
            "Customer: hi um I've lost my card\n"
            "Agent: I'm sorry to hear that when did you last have it\n"
            "Customer: this morning can you stop it please")
    sentences = split(call)
    assert [s.speaker for s in sentences] == ["agent", "customer", "agent", "customer"]
    assert [s.role for s in sentences] == [AGENT, CONTENT, AGENT, CONTENT]
    assert read(call).text == "hi um I've lost my card this morning can you stop it please"


def test_run_on_speech_is_cut_where_a_new_request_starts():
    said = ("hello um I've got my new card through the post today and um I want to start using it so how do I "
            "activate it and um also can I change the pin on it because it's given me a really awkward one")
    parts = [s.text for s in split(said)]
    assert parts == ["hello um I've got my new card through the post today", "and um I want to start using it",
                     "so how do I activate it", "and um also can I change the pin on it because it's given me a "
                                                "really awkward one"]
    # a date said in words is not an announced second request
    said = ("hello good morning i am calling because there is one cash withdrawal in my account of two hundred "
            "dollars on twenty second and i have not done any withdrawal that day")
    assert len(split(said)) == 1


def test_a_long_written_question_is_cut_where_a_second_one_is_joined_on():
    text = "How do I get one of the single-use virtual cards, and is there a limit on how much I can spend with one?"
    assert [s.text for s in split(text)] == ["How do I get one of the single-use virtual cards,",
                                             "and is there a limit on how much I can spend with one?"]
    said = ("I'd like to know what exchange rate you use for dollars and whether you charge any fee on top for the "
            "exchange.")
    assert [s.text for s in split(said)][1] == "and whether you charge any fee on top for the exchange."


def test_text_with_punctuation_inside_or_short_is_not_cut_into_clauses():
    text = "My card was declined at the shop; so how do I know what went wrong with it today and why? Thanks"
    assert [s.text for s in split(text)][0] == ("My card was declined at the shop; so how do I know what went wrong "
                                                "with it today and why?")
    assert len(split("Where is my card and how do I track it?")) == 1


def test_a_request_numbered_or_announced_in_speech_starts_a_clause():
    said = ("hello uh i want to ask two things first why i am charged three dollar when i take money from atm last "
            "week and second which atms i can use without any fee")
    assert [s.text for s in split(said)][1] == "and second which atms i can use without any fee"
    said = ("yeah hi so I've been trying to add my solicitor as a payee and it keeps saying it's not allowed but um "
            "the main reason I'm calling is I need to prove where some money came from")
    assert [s.text for s in split(said)][-1] == "um the main reason I'm calling is I need to prove where some money came from"


def test_thanks_that_go_on_to_ask_something_are_content():
    said = "thanks and also there's a transfer I did yesterday that's still showing as pending is that normal"
    assert roles(said) == [(CONTENT, said)]
    assert roles("thanks and have a nice day") == [(THANKS, "thanks and have a nice day")]
    assert roles("Thanks, Ravi")[0][0] == THANKS


def test_detail_fields_are_details_and_still_read():
    email = "Hi,\n\nCan you check this transfer?\nBeneficiary name: Anil Iyer\nAmount: £250\n\nThanks,\nRaj"
    assert [r for r in roles(email) if r[0] in (CONTENT, DETAIL)] == [
        (CONTENT, "Can you check this transfer?"), (DETAIL, "Beneficiary name: Anil Iyer"), (DETAIL, "Amount: £250")]
    assert "Anil Iyer" in read(email).text  # the model still reads the details
    assert roles("Where is my card?\n\nKind regards,\nSam Lee\nMobile: 07700 900123")[-1][0] == SIGNATURE
    # a label that introduces a question or says something, a question, or a long value: the customer's words
    for said in ("PS: can you also change my address", "Question: how do I change my PIN?",
                 "The problem is: my card was declined", "Reference: what do I put here?",
                 "Background: I moved to Lisbon in March and have been using the card there every day since"):
        assert roles(said)[0][0] == CONTENT, said


def test_a_bare_courtesy_is_still_read():
    reading = read("Thanks!")
    assert reading.text == "Thanks!"
    assert read("").text == "" and read("> only a quote").text == ""
