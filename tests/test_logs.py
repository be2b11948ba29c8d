"""Logs are JSON lines without customer secrets: each value is masked before it is escaped, and the agent,
email and call paths are read back at INFO level end to end."""
import json
import logging

import pytest

from agent import logs
from conftest import run_cli
from test_serve import PII_CALL, PII_EMAIL, SECRETS, secrets_in


@pytest.fixture
def info():
    """Logs at INFO for the test (configured in its body, on the stderr capsys captures there)."""
    yield lambda: logs.configure("INFO")
    logging.getLogger("support_agent").setLevel("WARNING")


def test_logs_are_json_and_never_carry_secrets(info, capsys):
    info()
    log = logs.get("test")
    logs.event(log, "note", detail="card 4111 1111 1111 1111, password: hunter2, mail a@b.org", amount="£5")
    line = capsys.readouterr().err.strip()
    record = json.loads(line)
    assert record["event"] == "note" and record["level"] == "info" and record["amount"] == "£5"
    assert "4111" not in line and "hunter2" not in line and "a@b.org" not in line
    assert "[CARD_NUMBER]" in record["detail"] and "[SECRET]" in record["detail"]


def test_values_are_masked_before_json_escapes_them(info, capsys):
    """A name after a line break was logged as it was: masking ran on the escaped line ("Thanks,\\nJohn")."""
    info()
    log = logs.get("test")
    logs.event(log, "note", text="Thanks,\nJohn Smith", nested={"items": ["IBAN GB82 WEST 1234 5698 7654 32"]},
               path=logs.Timer)
    with logs.about("Anna Kowalski"):
        logs.event(log, "note", text="Kowalski said to call 07700 900123")
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first["text"] == "Thanks,\n[NAME]" and first["nested"] == {"items": ["IBAN [IBAN]"]}
    assert second["text"] == "[NAME] said to call [PHONE]"


def test_agent_email_and_call_paths_log_no_secret_at_info(cli_env, piper, tmp_path):
    """The commands as a user runs them, the customer's details in the input; the answers on stdout carry
    them (they went through), the logs on stderr do not."""
    from channels.audio import write_wav

    text = PII_EMAIL.decode().split("\n\n", 1)[1]
    agent = run_cli("--log-level", "INFO", "reply", text, env=cli_env)
    (tmp_path / "pii.eml").write_bytes(PII_EMAIL)
    mail = run_cli("--log-level", "INFO", "email", "-", "--outbox", str(tmp_path / "outbox"), stdin=PII_EMAIL,
                   env=cli_env)
    recording = write_wav(tmp_path / "call.wav", piper.synthesize(PII_CALL), piper.sample_rate)
    call = run_cli("--log-level", "INFO", "call", str(recording), "--out", str(tmp_path / "reply.wav"), env=cli_env)
    for proc, events in ((agent, {"reply"}), (mail, {"reply", "email"}), (call, {"reply", "call"})):
        assert proc.returncode == 0, proc.stderr.decode()
        lines = [line for line in proc.stderr.decode().splitlines() if line.startswith("{")]
        assert events <= {json.loads(line)["event"] for line in lines}
        assert not secrets_in(lines), lines
    assert "GB82WEST12345698765432" in agent.stdout.decode()  # the entities, on stdout: the details went through
    assert "John" in json.loads(call.stdout)["transcript"] and set(SECRETS) & set(secrets_in([mail.stdout.decode()]))
