import json
import logging

from agent import logs


def test_logs_are_json_and_never_carry_secrets(capsys):
    logs.configure("INFO")
    log = logs.get("test")
    logs.event(log, "note", detail="card 4111 1111 1111 1111, password: hunter2, mail a@b.org", amount="£5")
    line = capsys.readouterr().err.strip()
    record = json.loads(line)
    assert record["event"] == "note" and record["level"] == "info" and record["amount"] == "£5"
    assert "4111" not in line and "hunter2" not in line and "a@b.org" not in line
    assert "[CARD_NUMBER]" in record["detail"] and "[SECRET]" in record["detail"]
    logging.getLogger("support_agent").setLevel("WARNING")
