"""Messages read as sentences with roles (agent/sentences.py)."""
from agent.sentences import AGENT, CONTENT, GREETING, QUOTED, SIGN_OFF, SIGNATURE, SUBJECT, THANKS, read, split

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


def test_punctuated_text_is_not_cut_into_clauses():
    text = "My card was declined at the shop and so how do I know what went wrong with it today? Thanks"
    assert [s.text for s in split(text)][0] == "My card was declined at the shop and so how do I know what went wrong with it today?"


def test_a_bare_courtesy_is_still_read():
    reading = read("Thanks!")
    assert reading.text == "Thanks!"
    assert read("").text == "" and read("> only a quote").text == ""
