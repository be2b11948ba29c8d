"""The desk's mechanics on a real Gradio server in this process, with handlers whose time the test decides:
logins and the gate, a busy queue, the per-user limit, timeouts, the audit trail, a removed user."""
import json
import threading
import time

import gradio as gr
import pytest

from agent.settings import Settings
from channels import users
from channels.desk import Desk, is_loopback
from conftest import free_port


HOLD = threading.Event()  # the "hold" handler runs until the test sets it


def serve_desk(work, timeout_s: float):
    """A Gradio app of three handlers behind a desk (queue_size 1, user_requests 2), served here."""
    users_file = work / "users"
    for name in ("amy", "bo", "cy"):
        users.add(users_file, name, f"{name}-password")
    settings = Settings(users_file=str(users_file), audit_file=str(work / "audit.jsonl"), queue_size=1,
                        user_requests=2, request_timeout_s=timeout_s)
    desk = Desk(settings, "127.0.0.1")

    def sleep(seconds: float):
        time.sleep(float(seconds))
        return f"slept {seconds}"

    def hold(_):
        HOLD.wait(60)
        return "held"

    def count(n: float, progress=gr.Progress()):
        for i in range(int(n)):
            progress((i, int(n)))
            time.sleep(0.5)
            yield str(i)

    with gr.Blocks() as app:
        box = gr.Textbox()
        gr.Button().click(sleep, box, box, api_name="sleep", concurrency_id="work")
        gr.Button().click(hold, box, box, api_name="hold", concurrency_id="work")
        gr.Button().click(count, box, box, api_name="count", concurrency_id="work")
    desk.serve(app)
    app.queue(default_concurrency_limit=1).launch(server_port=free_port(), prevent_thread_lock=True, quiet=True,
                                                  ssr_mode=False, **desk.launch_options())
    return app, (app.local_url, users_file, work / "audit.jsonl", desk)


@pytest.fixture(scope="module")
def desk_app(tmp_path_factory):
    """Timeouts long enough for any wait here: the queue's state is what the tests set up."""
    app, served = serve_desk(tmp_path_factory.mktemp("desk"), timeout_s=120)
    yield served
    HOLD.set()
    app.close()


@pytest.fixture(scope="module")
def hasty_desk(tmp_path_factory):
    """Every request answered within 4 s."""
    app, served = serve_desk(tmp_path_factory.mktemp("hasty"), timeout_s=4)
    yield served
    app.close()


def client(url, name):
    from gradio_client import Client

    return Client(url, auth=(name, f"{name}-password"), verbose=False)


def until(condition, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the desk never reached the state the test waits for"
        time.sleep(0.02)


def audit(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_request_past_its_timeout_is_told_so_and_holds_its_queue_until_done(hasty_desk):
    url, _, audit_file, desk = hasty_desk
    amy = client(url, "amy")
    started = time.monotonic()
    with pytest.raises(Exception, match=r"Timed out: sleep took longer than 4 s"):
        amy.predict("10", api_name="/sleep")
    assert time.monotonic() - started < 9  # answered at the deadline (and the client's overhead), not at 10 s
    assert desk.lanes["work"].turn.locked() and desk.in_flight["amy"] == 1  # the step still runs, and counts
    until(lambda: not desk.lanes["work"].turn.locked())
    assert time.monotonic() - started > 10 and "amy" not in desk.in_flight
    assert amy.predict("0", api_name="/sleep") == "slept 0"
    with pytest.raises(Exception, match="Timed out: count"):  # stopped at its next progress update
        amy.predict("16", api_name="/count")
    outcomes = [(a["event"], a["outcome"], a["user"]) for a in audit(audit_file)[-3:]]
    assert outcomes == [("sleep", "timed out", "amy"), ("sleep", "answered", "amy"), ("count", "timed out", "amy")]


def test_a_full_queue_and_a_busy_user_are_refused_at_once(desk_app):
    url, _, audit_file, desk = desk_app
    amy, bo, cy = client(url, "amy"), client(url, "bo"), client(url, "cy")
    HOLD.clear()
    running = amy.submit("", api_name="/hold")
    until(lambda: "work" in desk.lanes and desk.lanes["work"].turn.locked())
    waiting = bo.submit("0", api_name="/sleep")  # queue_size 1: the one place to wait
    until(lambda: desk.lanes["work"].waiting == 1)
    with pytest.raises(Exception, match=r"Busy, try again in a minute: 1 requests are already waiting"):
        cy.predict("0", api_name="/sleep")  # refused while the queue is still held: at once
    HOLD.set()
    assert running.result(timeout=30) == "held" and waiting.result(timeout=30) == "slept 0"
    HOLD.clear()
    first = amy.submit("", api_name="/hold")
    until(lambda: desk.lanes["work"].turn.locked())
    second = amy.submit("0", api_name="/sleep")
    until(lambda: desk.in_flight["amy"] == 2)
    with pytest.raises(Exception, match="Busy, try again when one of yours is done: you have 2 requests"):
        amy.predict("0", api_name="/sleep")  # user_requests 2
    HOLD.set()
    assert first.result(timeout=30) == "held" and second.result(timeout=30) == "slept 0"
    busy = [a for a in audit(audit_file) if a["outcome"] == "busy"]
    assert [a["user"] for a in busy[-2:]] == ["cy", "amy"]


def test_logins_are_checked_throttled_and_end_with_the_user(desk_app):
    import httpx

    url, users_file, audit_file, _ = desk_app
    for _ in range(5):
        assert httpx.post(f"{url}login", data={"username": "bo", "password": "guess"}).status_code == 400
    refused = httpx.post(f"{url}login", data={"username": "bo", "password": "bo-password"})
    assert refused.status_code == 400  # five failures in a row: the right password waits 30 s
    assert audit(audit_file)[-1]["reason"] == "5 failed logins in a row"
    with httpx.Client(base_url=url) as cy:
        assert cy.post("login", data={"username": "cy", "password": "cy-password"}).status_code == 200
        assert cy.get("config").status_code == 200
        users.remove(users_file, "cy")
        assert cy.get("config").status_code == 401  # the session ends with the user
    assert {"event": "session_ended", "user": "cy"}.items() <= audit(audit_file)[-1].items()


def test_loopback_is_recognised():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("127.3.2.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("192.168.1.10")


def test_desk_refuses_to_serve_beyond_loopback_without_logins(tmp_path):
    from agent.types import AgentError

    with pytest.raises(AgentError, match="refusing to serve on 0.0.0.0 without logins: set users_file"):
        Desk(Settings(audit_file=""), "0.0.0.0")
    (tmp_path / "empty").write_text("")
    with pytest.raises(AgentError, match="has no users: add one with"):
        Desk(Settings(users_file=str(tmp_path / "empty"), audit_file=""), "0.0.0.0")


def test_users_in_parallel_are_all_kept(tmp_path):
    path = tmp_path / "users"
    threads = [threading.Thread(target=users.add, args=(path, f"user{i}", f"password-{i}")) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    found = users.read(path)
    assert sorted(found) == [f"user{i}" for i in range(6)]
    assert users.verify(found, "user3", "password-3") and not users.verify(found, "user3", "password-4")
    assert not users.verify(found, "nobody", "password-3")
    assert oct(path.stat().st_mode & 0o777) == "0o600" and "password-3" not in path.read_text()
