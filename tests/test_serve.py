"""The demo served to a team (``python demo.py`` with a users file): no route without a login, the README's
API examples, the audit trail, logs without customer secrets, and a bounded load from several users."""
import json
import re
import subprocess
import sys
import time
import zipfile

import httpx
import numpy as np
import pytest

from channels import audio
from conftest import REPO, TEAM, cli_environment, one_line_error
from test_email import ANNA

# Gradio's login page and what it loads; everything else must answer 401 without a session.
OPEN = re.compile(r"/(login/?|logout|favicon\.ico|theme\.css|gradio_api/startup-events|(assets|static)/.*)?")
PII_EMAIL = b"""From: John Smith <john.smith@example.org>
To: Kestrel Bank Support <support@kestrel.example>
Subject: Charged twice
Message-ID: <pii-1@example.org>
Date: Thu, 21 Nov 2024 10:00:00 +0000
Content-Type: text/plain; charset=utf-8

Hello,

I was charged twice for the same payment of \xc2\xa342.10. Please refund it to my account number 31926819,
sort code 20-00-00, IBAN GB82 WEST 1234 5698 7654 32. My card number is 4111 1111 1111 1111 and you can
call me on 07700 900123.

Thanks,
John Smith
"""
PII_CALL = ("Hello, my name is John Smith. I was charged twice for the same payment. My account number is "
            "3 1 9 2 6 8 1 9 and my phone number is 0 7 7 0 0 9 0 0 1 2 3.")
# Each as written, and as digits or letters without spaces (how a transcript or a log may hold them).
SECRETS = ["John", "Smith", "john.smith@example.org", "31926819", "GB82WEST12345698765432", "4111111111111111",
           "07700900123"]


def login(demo, name="anna"):
    from gradio_client import Client

    return Client(demo.url, auth=(name, TEAM[name]), verbose=False)


def gradio_routes() -> list[tuple[str, str]]:
    """``(method, path)`` of every route the installed Gradio serves, from an app built here."""
    import gradio as gr
    from gradio.routes import App

    with gr.Blocks() as blocks:
        gr.Textbox()

    def walk(routes):
        for route in routes:
            if hasattr(route, "path"):
                yield from ((m, route.path) for m in sorted(getattr(route, "methods", None) or {"GET"}))
            else:  # an included router
                yield from walk(route.original_router.routes)

    return sorted(set(walk(App.create_app(blocks).routes)))


def test_no_route_without_a_login(demo, spoken_request):
    from gradio_client import Client, handle_file

    apis = sorted(login(demo).view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert len(apis) == 9
    with httpx.Client(base_url=demo.url.rstrip("/"), timeout=30) as member:
        assert member.post("/login", data={"username": "anna", "password": TEAM["anna"]}).status_code == 200
        uploaded = member.post("/gradio_api/upload", files={"files": ("note.txt", b"a customer's words")}).json()[0]
        assert member.get(f"/gradio_api/file={uploaded}").text == "a customer's words"
        assert member.get("/gradio_api/info").status_code == 200
    checked = 0
    with httpx.Client(base_url=demo.url.rstrip("/"), timeout=30) as stranger:
        for method, template in gradio_routes():
            for api in apis if "{api_name}" in template else ["-"]:
                path = re.sub(r"\{(\w+)(:path)?\}",
                              lambda m: {"api_name": api.strip("/"), "path_or_url": uploaded}.get(m[1], "x"), template)
                if OPEN.fullmatch(path):
                    continue
                answer = stranger.request(method, path, json={"data": [], "fn_index": 0, "session_hash": "x"})
                assert answer.status_code == 401, (method, path, answer.status_code)
                checked += 1
        assert checked > 70
        page = stranger.get("/").text  # the login page: nothing of the desk in it
        assert "answer_call" not in page and "Call recording" not in page
        for wrong in ("not-the-password", TEAM["ben"]):
            assert stranger.post("/login", data={"username": "anna", "password": wrong}).status_code == 400
        assert stranger.get(f"/gradio_api/file={uploaded}").status_code == 401
    for auth in (None, ("anna", "not-the-password"), ("nobody", "nobody-password")):
        with pytest.raises(Exception, match="credentials were not provided|Could not login"):
            Client(demo.url, auth=auth, verbose=False).predict(handle_file(str(spoken_request)),
                                                                api_name="/answer_call")


def readme_api_example() -> str:
    readme = (REPO / "README.md").read_text()
    return re.search(r"### The demo's API\n.*?```python\n(.*?)```", readme, re.S)[1]


def test_readme_api_examples_run_and_cover_every_route(demo, spoken_request, tmp_path, monkeypatch, capsys):
    example = readme_api_example()
    anna = login(demo)
    named = set(anna.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert set(re.findall(r'api_name="(/\w+)"', example)) == named
    (tmp_path / "call.wav").write_bytes(spoken_request.read_bytes())
    (tmp_path / "message.eml").write_bytes(ANNA)
    with zipfile.ZipFile(tmp_path / "inbox.zip", "w") as z:
        z.writestr("one.eml", ANNA)
    monkeypatch.chdir(tmp_path)
    example = example.replace('"http://127.0.0.1:7860/"', repr(demo.url)).replace('"anna\'s password"',
                                                                                    repr(TEAM["anna"]))
    found = {}
    exec(compile(example, "README.md", "exec"), found)
    assert found["intent"]["label"] == "transaction_charged_twice" and "In-Reply-To" in found["draft"]
    assert "transaction_charged_twice confirmed" in found["status"] and "refunded the second" in found["draft"]
    assert "1 message" in found["summary"] and found["drafts_zip"].endswith(".zip")
    assert "Nothing to correct yet" in capsys.readouterr().out
    assert found["turns"]["data"] and audio.decode(found["edited_wav"]).size > 0


def secrets_in(lines: list[str]) -> list[str]:
    """The secrets found in ``lines``, as written or with the spaces taken out."""
    found = []
    for line in lines:
        squeezed = re.sub(r"\s|\\n", "", line)
        found += [s for s in SECRETS if s in line or s in squeezed]
    return found


def test_a_team_at_work_is_audited_and_its_logs_hold_no_customer_secret(demo, piper, tmp_path):
    """Calls, emails, a mailbox and corrections full of customer details, by a logged-in user; the demo's
    logs (INFO) and the audit trail are read back."""
    from gradio_client import handle_file

    call = audio.write_wav(tmp_path / "pii-call.wav", piper.synthesize(PII_CALL), piper.sample_rate)
    eml = tmp_path / "pii.eml"
    eml.write_bytes(PII_EMAIL)
    with zipfile.ZipFile(tmp_path / "inbox.zip", "w") as z:
        z.writestr("first.eml", PII_EMAIL)
        z.writestr("second.eml", PII_EMAIL.replace(b"pii-1@", b"pii-2@"))
    audited = len(demo.audit.read_text().splitlines())
    ben = login(demo, "ben")

    turns, intent, *_ = ben.predict(handle_file(str(call)), api_name="/answer_call")
    assert "charged twice" in " ".join(row[3] for row in turns["data"]).lower()
    ben.predict("transaction_charged_twice", "John Smith, we refunded 4111 1111 1111 1111 to GB82 WEST 1234 5698 "
                "7654 32; call 07700 900123.", api_name="/call_feedback")
    fields, _, outcome, *_ = ben.predict(handle_file(str(eml)), "", api_name="/answer_email")
    assert "replied" in outcome
    ben.predict("transaction_charged_twice", "Refunded to account number 31926819, Mr Smith.\n\nThanks,\nJohn Smith",
                api_name="/email_feedback")
    table, summary, _ = ben.predict(handle_file(str(tmp_path / "inbox.zip")), api_name="/process_mailbox")
    assert "2 messages" in summary

    lines = demo.audit.read_text().splitlines()[audited:]
    done = [json.loads(line) for line in lines]
    assert [(d["event"], d["outcome"]) for d in done] == [("login", "logged in"), ("answer_call", "answered"),
                                                          ("save_feedback", "answered"), ("answer_email", "answered"),
                                                          ("save_feedback", "answered"),
                                                          ("process_mailbox", "answered")]
    assert all(d["user"] == "ben" and d["time"].startswith("20") for d in done)
    assert done[1]["channel"] == "call" and done[1]["files"][0]["bytes"] == call.stat().st_size
    assert done[3]["intent"] == "transaction_charged_twice" and done[5]["messages"] == 2 == done[5]["answered"]
    records = [json.loads(line) for line in demo.feedback.read_text().splitlines()[-2:]]
    assert [r["user"] for r in records] == ["ben", "ben"] and [r["channel"] for r in records] == ["call", "email"]

    logged = demo.output.read_text(errors="replace").splitlines()
    replies = [json.loads(line) for line in logged if '"event": "reply"' in line]
    assert {"call", "email"} <= {r["channel"] for r in replies}  # the agent's own lines were read back too
    assert not secrets_in(logged + demo.audit.read_text().splitlines())
    assert not secrets_in([records[1]["text"], records[1]["corrected_reply"]])  # the email's: names known


@pytest.mark.parametrize("args, env, message", [
    (["--host", "0.0.0.0"], {}, "refusing to serve on 0.0.0.0 without logins: set users_file"),
    (["--host", "0.0.0.0"], {"SUPPORT_AGENT_USERS_FILE": "/nonexistent/team.users"},
     "users file /nonexistent/team.users has no users: add one with"),
])
def test_demo_refuses_to_serve_beyond_loopback_without_logins(args, env, message, tmp_path):
    proc = subprocess.run([sys.executable, "demo.py", "--port", "1", *args], cwd=REPO, capture_output=True,
                          env=cli_environment({"SUPPORT_AGENT_AUDIT_FILE": str(tmp_path / "audit.jsonl"), **env}),
                          timeout=120)
    assert message in one_line_error(proc)


def test_a_bounded_load_from_four_users_is_answered_or_refused_as_busy(demo, piper, tmp_path):
    """20 calls and 50 emails at once from four logged-in users: each is answered (once, and right) or
    refused with the busy message, none lost, and the first page is served within 2 s afterwards."""
    from gradio_client import handle_file

    clients = [login(demo, name) for name in TEAM]
    speech = audio.resample(piper.synthesize("Hello, my new card has not arrived yet. Where is it?"),
                            piper.sample_rate, audio.SAMPLE_RATE)
    calls = [audio.write_wav(tmp_path / f"call-{i}.wav", np.concatenate([speech, np.zeros(16 * (i + 1), np.float32)]),
                             audio.SAMPLE_RATE) for i in range(20)]  # each its own digest in the audit
    emails = []
    for i in range(50):
        emails.append(tmp_path / f"email-{i}.eml")
        emails[-1].write_bytes(ANNA.replace(b"CAF1234@mail.example.org", f"load-{i}@example.org".encode()))
    audited = len(demo.audit.read_text().splitlines())
    jobs, counts = [], {"call": 0, "email": 0}
    for i, kind in enumerate((["call"] * 2 + ["email"] * 5) * 10):  # interleaved, round the four users
        n, client = counts[kind], clients[i % len(clients)]
        counts[kind] += 1
        if kind == "call":
            jobs.append((kind, n, client.submit(handle_file(str(calls[n])), api_name="/answer_call")))
        else:
            jobs.append((kind, n, client.submit(handle_file(str(emails[n])), "", api_name="/answer_email")))
    assert counts == {"call": 20, "email": 50}
    answered, busy = [], []
    deadline = time.monotonic() + 240
    for kind, what, job in jobs:
        try:
            out = job.result(timeout=max(deadline - time.monotonic(), 1))
        except Exception as exc:
            assert str(exc).startswith("Busy, try again"), f"{kind} {what}: {exc}"
            busy.append((kind, what))
            continue
        if kind == "call":
            assert out[1]["label"] == "card_arrival" and "3 to 5 working days" in out[5]
        else:
            assert dict(out[0]["data"])["Message-ID"] == f"<load-{what}@example.org>" and "replied" in out[2]
            assert f"In-Reply-To: <load-{what}@example.org>" in out[8]  # its own answer, not another's
        answered.append((kind, what))
    assert len(answered) + len(busy) == 70 and answered and busy

    started = time.monotonic()
    with httpx.Client(base_url=demo.url, timeout=10) as fresh:
        assert fresh.get("/").status_code == 200
        assert fresh.post("/login", data={"username": "dev", "password": TEAM["dev"]}).status_code == 200
        assert fresh.get("/config").status_code == 200
    assert time.monotonic() - started < 2

    lines = [json.loads(line) for line in demo.audit.read_text().splitlines()[audited:]]
    done = [d for d in lines if d["event"] in ("answer_call", "answer_email") and d["outcome"] == "answered"]
    assert len(done) == len(answered)  # none answered twice
    call_digests = [d["files"][0]["sha256"] for d in done if d["event"] == "answer_call"]
    assert len(call_digests) == len(set(call_digests)) == sum(kind == "call" for kind, _ in answered)
    assert sum(d["outcome"] == "busy" for d in lines) == len(busy)
