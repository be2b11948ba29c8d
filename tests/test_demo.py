"""The demo serves Gradio on 127.0.0.1 and answers through its API: calls, emails, mailboxes and corrections;
bad input is a one-line error and the demo goes on serving."""
import email
import json
import mailbox
import zipfile

import numpy as np
import pytest

from channels import audio
from conftest import TEAM
from test_email import ANNA


@pytest.fixture
def client(demo):
    from gradio_client import Client

    return Client(demo.url, auth=("anna", TEAM["anna"]), verbose=False)


def test_demo_answers_a_call(client, spoken_request):
    from gradio_client import handle_file

    transcript, intent, escalation, sentiment, entities, reply, spoken, timings, corrected, _ = client.predict(
        handle_file(str(spoken_request)), api_name="/answer_call")
    speaker, start, end, text = transcript["data"][0]
    assert "card" in text and start < end and speaker == "caller"
    assert intent["label"] == "card_arrival" == corrected and len(intent["confidences"]) == 5
    assert escalation.startswith("No") and "3 to 5 working days" in reply
    assert audio.decode(spoken).size > audio.SAMPLE_RATE  # real speech, at least a second of it
    assert all(stage in timings for stage in ("decode", "transcribe", "understand and draft", "speak", "total"))
    edited = client.predict("Your new card is on its way.", api_name="/speak")
    assert audio.decode(edited).size < audio.decode(spoken).size


def test_demo_answers_an_email_and_keeps_corrections(client, demo, tmp_path):
    from gradio_client import handle_file

    eml = tmp_path / "anna.eml"
    eml.write_bytes(ANNA)
    fields, new_text, outcome, intent, *_, reply, draft, download, corrected, status = client.predict(
        handle_file(str(eml)), "", api_name="/answer_email")
    assert dict(fields["data"])["Message-ID"] == "<CAF1234@mail.example.org>" and "replied" in outcome
    assert "charged twice" in new_text and "Thank you for your message" not in new_text  # quoted history removed
    assert intent["label"] == "transaction_charged_twice" and corrected == intent["label"]
    assert "In-Reply-To: <CAF1234@mail.example.org>" in draft and download.endswith(".eml")
    assert email.message_from_bytes(open(download, "rb").read())["In-Reply-To"] == "<CAF1234@mail.example.org>"

    # A person edits the reply and corrects the intent: the record goes to the feedback file, masked.
    edited = "Hi Anna, we refunded the second payment. Questions? Write to anna.smith@example.org."
    draft, download = client.predict(edited, api_name="/redraft_email")
    assert "we refunded the second payment" in draft and "Auto-Submitted" not in draft
    status = client.predict("extra_charge_on_statement", edited, api_name="/email_feedback")
    assert "intent corrected to extra_charge_on_statement" in status and "reply edited" in status
    record = json.loads(demo[1].read_text().splitlines()[-1])
    assert record["channel"] == "email" and record["intent"] == "transaction_charged_twice"
    assert record["corrected_intent"] == "extra_charge_on_statement" and record["user"] == "anna"
    assert "refunded the second payment" in record["corrected_reply"]
    assert "anna.smith@example.org" not in demo[1].read_text()


def test_demo_answers_a_mailbox(client, tmp_path):
    from gradio_client import handle_file

    second = ANNA.replace(b"CAF1234@mail.example.org", b"CAF5678@mail.example.org")
    archive = tmp_path / "inbox.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("one.eml", ANNA)
        z.writestr("notes.eml", b"\x00\x01 not an email \xff" * 20)
        z.writestr("two.eml", second)
    table, summary, drafts = client.predict(handle_file(str(archive)), api_name="/process_mailbox")
    rows = table["data"]
    assert [r[2] for r in rows] == ["replied", "rejected", "replied"] and "3 messages" in summary
    assert rows[0][3] == "transaction_charged_twice" and "not an email" in rows[1][5]
    with zipfile.ZipFile(drafts) as z:
        replies = [email.message_from_bytes(z.read(n)) for n in z.namelist()]
    assert sorted(r["In-Reply-To"] for r in replies) == ["<CAF1234@mail.example.org>", "<CAF5678@mail.example.org>"]

    box = mailbox.mbox(tmp_path / "inbox.mbox")
    box.add(ANNA)
    box.add(second)
    box.flush()
    table, summary, _ = client.predict(handle_file(str(tmp_path / "inbox.mbox")), api_name="/process_mailbox")
    assert [r[2] for r in table["data"]] == ["replied", "replied"]


def test_demo_answers_an_imap_folder_once_and_keeps_no_password(client, demo):
    from dovecot import PASSWORD, Dovecot

    server = Dovecot().start()
    try:
        # Message-IDs of their own: the demo's state store outlives this test (a key answered before is a duplicate)
        server.deliver([ANNA.replace(b"CAF1234@", b"imap-1@"), ANNA.replace(b"CAF1234@", b"imap-2@")])
        table, summary, drafts = client.predict(server.url(), PASSWORD, "", "Escalated", True, api_name="/process_imap")
        assert [r[2] for r in table["data"]] == ["replied", "replied"] and summary.endswith("drafts in Drafts")
        assert table["data"][0][1].startswith("imap:INBOX;UIDVALIDITY=") and drafts is None
        replies = [email.message_from_bytes(raw) for _, _, raw in server.messages("Drafts")]
        assert sorted(r["In-Reply-To"] for r in replies) == ["<imap-1@mail.example.org>", "<imap-2@mail.example.org>"]
        table, summary, _ = client.predict(server.url(), PASSWORD, "", "", True, api_name="/process_imap")
        assert not table["data"] and "No new messages in INBOX" in summary and len(server.messages("Drafts")) == 2
        with pytest.raises(Exception, match="login refused for support@kestrel.example") as caught:
            client.predict(server.url(), "not the password", "", "", True, api_name="/process_imap")
        assert "not the password" not in str(caught.value)
        with pytest.raises(Exception, match="certificate cannot be trusted"):
            client.predict(server.url(), PASSWORD, "", "", False, api_name="/process_imap")
    finally:
        server.close()
    stored = [p for p in demo[1].parent.rglob("*") if p.is_file()]  # the feedback file and the IMAP state
    assert stored and not any(PASSWORD.encode() in p.read_bytes() for p in stored)


@pytest.mark.parametrize("name, content, endpoint, message", [
    ("notes.wav", b"not audio\n" * 50, "/answer_call", "notes.wav: not a readable audio file"),
    ("empty.wav", b"", "/answer_call", "empty.wav: empty file"),
    ("photo.eml", bytes(range(256)) * 20, "/answer_email", "Cannot answer this email: not an email message"),
    ("huge.eml", b"x" * (41 * 2**20), "/answer_email", r"huge.eml is too large for the demo: 41 MB \(limit 40 MB"),
    ("inbox.zip", b"PK\x03\x04 broken", "/process_mailbox", "inbox.zip is neither an mbox file nor a zip"),
])
def test_bad_input_is_a_friendly_error_and_the_demo_goes_on(client, tmp_path, spoken_request, name, content,
                                                            endpoint, message):
    from gradio_client import handle_file

    bad = tmp_path / name
    bad.write_bytes(content)
    args = (handle_file(str(bad)), "") if endpoint == "/answer_email" else (handle_file(str(bad)),)
    with pytest.raises(Exception, match=message) as caught:
        client.predict(*args, api_name=endpoint)
    assert "Traceback" not in str(caught.value) and str(tmp_path) not in str(caught.value)
    assert client.predict("Still here.", api_name="/speak").endswith(".wav")


def test_demo_refuses_what_is_too_large(client, tmp_path):
    from gradio_client import handle_file
    from demo import MAX_CALL_SECONDS

    long_call = audio.write_wav(tmp_path / "long.wav", np.zeros(8000 * (MAX_CALL_SECONDS + 60), np.float32), 8000)
    with pytest.raises(Exception, match="long.wav lasts 16 minutes: the demo answers calls of up to 15"):
        client.predict(handle_file(str(long_call)), api_name="/answer_call")
    with pytest.raises(Exception, match="too long to speak"):
        client.predict("word " * 1000, api_name="/speak")
    with pytest.raises(Exception, match="Nothing to correct yet"):
        client.predict("card_arrival", "edited", api_name="/call_feedback")


def test_analysis_says_where_a_negative_label_comes_from():
    from agent.types import Reply
    from demo import analysis

    reply = Reply(text="", intent="transfer_timing", confidence=0.4, top=[], escalate=True,
                  reason="angry customer ('thanks for nothing', sentiment +0.44)", entities=[], source="composer",
                  passages=[], sentiment={"label": "negative", "score": 0.44, "source": "hand-over"})
    assert analysis(reply)[2] == "negative (from the hand-over reason; VADER +0.44)"
    plain = Reply(text="", intent="card_arrival", confidence=0.9, top=[], escalate=False, reason=None, entities=[],
                  source="composer", passages=[], sentiment={"label": "positive", "score": 0.64, "source": "vader"})
    assert analysis(plain)[2] == "positive (VADER +0.64)"
