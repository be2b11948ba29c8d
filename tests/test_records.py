"""Training records: PII masked before anything is written, safe with concurrent writers."""
import json
import multiprocessing

import pytest

from agent import records
from agent.pii import mask_pii
from agent.settings import Settings
from agent.types import AgentError, Message

VALID_CARD = "4111 1111 1111 1111"  # passes Luhn


@pytest.mark.parametrize("text, expected", [
    # Names where the wording marks them as names.
    ("Hi Maria,\nmy card is lost.", "Hi [NAME],\nmy card is lost."),
    ("Dear Mr Smith\nI need help", "Dear [NAME]\nI need help"),
    ("Good morning Dr. Jane Doe,", "Good morning [NAME],"),
    ("Thanks,\nJohn Smith", "Thanks,\n[NAME]"),
    ("Kind regards,\nJosé Álvarez\nKestrel customer", "Kind regards,\n[NAME]\nKestrel customer"),
    ("Thanks for your help!\n\nTom", "Thanks for your help!\n\n[NAME]"),
    ("Ok great. Regards, Anna", "Ok great. Regards, [NAME]"),
    ("Hello, my name is Anna Kowalski and I lost my card", "Hello, my name is [NAME] and I lost my card"),
    ("hi this is John speaking, my card", "hi this is [NAME] speaking, my card"),
    ("Hello, this is Maria from Leeds.", "Hello, this is [NAME] from Leeds."),
    # Words after the same cues that are not names.
    ("Dear Sir or Madam,\nhelp", "Dear Sir or Madam,\nhelp"),
    ("Hi team, my card", "Hi team, my card"),
    ("Hi, I was charged twice", "Hi, I was charged twice"),
    ("Hello Kestrel Bank,", "Hello Kestrel Bank,"),
    ("Thanks, I will wait", "Thanks, I will wait"),
    ("Hello. My card is not working.", "Hello. My card is not working."),
    ("I am flying to Paris tomorrow, thanks Paris", "I am flying to Paris tomorrow, thanks Paris"),
    # Numbers that must stay: a 16-digit reference failing Luhn, amounts, order references, dates, card ending.
    ("ticket 1234 5678 9012 3456 is open", "ticket 1234 5678 9012 3456 is open"),
    ("refund £1,250.00 and EUR 40 for order ZX-99812", "refund £1,250.00 and EUR 40 for order ZX-99812"),
    ("order number 48213 paid on 12/10/2024 and 2024-03-05", "order number 48213 paid on 12/10/2024 and 2024-03-05"),
    ("my card ending in 4821 was declined", "my card ending in 4821 was declined"),
    # Secrets that must go.
    (f"card {VALID_CARD}, IBAN GB82 WEST 1234 5698 7654 32, jo@x.org, +44 20 7946 0958",
     "card [CARD_NUMBER], IBAN [IBAN], [EMAIL], [PHONE]"),
])
def test_mask_pii(text, expected):
    assert mask_pii(text) == expected


def test_known_names_are_masked_everywhere():
    assert mask_pii("Jane here. jane Roe's card", known_names=["Jane Roe"]) == "[NAME] here. jane [NAME]'s card"


def reply(agent, text, channel="call", name=None):
    message = Message(text=text, channel=channel, customer_name=name)
    return message, agent.handle(message)


def test_from_reply_and_append_mask_everything(agent, tmp_path):
    message, r = reply(agent, f"Hi, this is Jane Roe speaking. My card {VALID_CARD} was stolen, "
                              "PIN is 1234, call 07700 900123", name="Jane Roe")
    path = tmp_path / "deep" / "records.jsonl"
    records.append(path, records.from_reply(message, r, corrected_intent="lost_or_stolen_card",
                                            corrected_reply="Dear Jane Roe, please email jane@roe.example"))
    records.append(path, records.Record("email", "mail me at a.b@c.org", "card_arrival", 0.5, "ok"))
    raw = path.read_text(encoding="utf-8")
    for secret in ("Jane", "Roe", "4111", "1234", "07700", "jane@", "a.b@c.org"):
        assert secret not in raw
    first, second = (json.loads(line) for line in raw.splitlines())
    assert first["text"].startswith("Hi, this is [NAME] speaking. My card [CARD_NUMBER] was stolen, PIN is [SECRET]")
    assert first["corrected_reply"] == "Dear [NAME], please email [EMAIL]"
    assert first["intent"] == r.intent and first["corrected_intent"] == "lost_or_stolen_card"
    assert first["channel"] == "call" and first["time"].endswith("+00:00")
    assert second["text"] == "mail me at [EMAIL]"
    assert records.Record.from_dict(first).corrected_intent == "lost_or_stolen_card"


def test_agent_logs_a_record_per_handled_message(agent, settings, tmp_path):
    from agent.pipeline import Agent

    path = tmp_path / "records.jsonl"
    logging = Agent(settings.replace(records_file=str(path)))
    logging.__dict__["classifier"] = agent.classifier  # the loaded model, not a second copy
    r = logging.handle(Message(text="Dear Kestrel, my card has not arrived.\nThanks,\nPeter Parker", channel="email"))
    (line,) = path.read_text(encoding="utf-8").splitlines()
    record = json.loads(line)
    assert (record["intent"], record["confidence"], record["reply"]) == (r.intent, r.confidence, mask_pii(r.text))
    assert "Peter" not in line and record["text"].endswith("Thanks,\n[NAME]")


def _write_many(path, worker):
    for i in range(200):
        records.append(path, records.Record("text", f"worker {worker} message {i} " + "x" * 3000, "i", 1.0, "r"))


def test_concurrent_appenders_never_interleave(tmp_path):
    path = tmp_path / "records.jsonl"
    workers = [multiprocessing.Process(target=_write_many, args=(path, w)) for w in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 800 and all(json.loads(line)["intent"] == "i" for line in lines)


def test_unwritable_path_is_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(AgentError, match="cannot write training record"):
        records.append(blocker / "records.jsonl", records.Record("text", "t", "i", 1.0, "r"))


def test_settings_name_the_files():
    s = Settings()
    assert s.records_file == "" and s.feedback_file and s.models_dir
