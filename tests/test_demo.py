"""The demo serves Gradio on 127.0.0.1 and answers through its API; errors do not stop it."""
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import REPO
from test_email import ANNA


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def demo_url(cache_dir):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "SUPPORT_AGENT_CACHE_DIR": str(cache_dir)}
    proc = subprocess.Popen([sys.executable, "demo.py", "--port", str(port)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail("demo exited early:\n" + proc.stdout.read().decode())
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(1)
    else:
        proc.kill()
        pytest.fail("demo did not serve within 180 s")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_demo_serves_and_answers(demo_url, spoken_request, tmp_path):
    from gradio_client import Client, handle_file

    assert demo_url.startswith("http://127.0.0.1:")
    client = Client(demo_url, verbose=False)
    eml = tmp_path / "anna.eml"
    eml.write_bytes(ANNA)
    result, draft, download = client.predict(handle_file(str(eml)), "", api_name="/answer_email")
    assert result["action"] == "replied" and "In-Reply-To: <CAF1234@mail.example.org>" in draft
    assert download.endswith(".eml")

    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("not audio\n" * 50)
    with pytest.raises(Exception, match="notes.wav: not a readable audio file"):
        client.predict(handle_file(str(not_audio)), api_name="/answer_call")

    transcript, intent, reply, spoken, details = client.predict(handle_file(str(spoken_request)),
                                                                api_name="/answer_call")
    assert intent["label"] == "card_arrival" and "card" in transcript and spoken.endswith(".wav")
    assert set(details["timings_s"]) == {"decode", "transcribe", "understand_and_draft", "speak"}
