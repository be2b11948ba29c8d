"""Shared, session-scoped fixtures: models load once; recordings are spoken by the packaged voice."""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # every test runs on packaged weights; a hub call would be a bug
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
# Models promoted on this machine (support-agent models promote) must not change what the tests measure.
os.environ["SUPPORT_AGENT_MODELS_DIR"] = tempfile.mkdtemp(prefix="support-agent-test-models-")
# Derived files (joined Whisper base, encoder exports) go to one cache for the session, not this user's.
os.environ["SUPPORT_AGENT_CACHE_DIR"] = tempfile.mkdtemp(prefix="support-agent-test-cache-")

from agent.pipeline import Agent  # noqa: E402
from agent.settings import Settings  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # bench/calls.py builds the two-party test calls
CLI = [sys.executable, "-m", "channels.cli"]

CARD_REQUEST = "Hello, I ordered a new bank card two weeks ago, but it still has not arrived. Where is it?"


@pytest.fixture(scope="session", autouse=True)
def _remove_session_dirs():
    yield
    for variable in ("SUPPORT_AGENT_MODELS_DIR", "SUPPORT_AGENT_CACHE_DIR"):
        shutil.rmtree(os.environ[variable], ignore_errors=True)


@pytest.fixture
def tiny_bert(tmp_path) -> str:
    """A tiny random BERT encoder (transformers format) built here: for the loading paths of other encoders."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "card", "my"]))
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(tmp_path / "tiny")
    BertModel(BertConfig(vocab_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(tmp_path / "tiny")
    return str(tmp_path / "tiny")


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    return Path(os.environ["SUPPORT_AGENT_CACHE_DIR"])


@pytest.fixture(scope="session")
def settings(cache_dir) -> Settings:
    return Settings(cache_dir=str(cache_dir), models_dir=str(cache_dir / "models"))  # not this user's promotions


@pytest.fixture(scope="session")
def cli_env(cache_dir) -> dict:
    """Environment for CLI subprocesses: the session's model cache."""
    return {"SUPPORT_AGENT_CACHE_DIR": str(cache_dir)}


@pytest.fixture(scope="session")
def agent(settings) -> Agent:
    return Agent(settings).warm_up()


@pytest.fixture(scope="session")
def piper(settings):
    from channels.tts import PiperEngine

    return PiperEngine(settings, deterministic=True)


@pytest.fixture(scope="session")
def coqui_vits(tmp_path_factory) -> Path:
    """A small Coqui VITS with random weights, saved as Coqui's trainer saves a checkpoint (bench/random_vits.py).

    The default install has Coqui TTS; the small one (TORCH_BUILD=cpu) has no torchaudio, so there these
    tests are skipped, and in CI, which runs the default install, they fail instead."""
    try:
        import TTS.api  # noqa: F401
    except Exception as exc:  # ImportError, or OSError for a torchaudio that cannot load beside this torch
        reason = f"Coqui TTS cannot be imported ({type(exc).__name__}: {exc})"
        pytest.fail(reason) if os.environ.get("CI") else pytest.skip(reason)
    # Loaded from its file: with bench/ on sys.path, bench/demo.py would stand in for the demo.
    spec = importlib.util.spec_from_file_location("random_vits", REPO / "bench" / "random_vits.py")
    random_vits = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(random_vits)
    return random_vits.write_random_vits(tmp_path_factory.mktemp("coqui") / "random-vits", small=True)


@pytest.fixture(scope="session")
def coqui(settings, coqui_vits):
    """The Coqui engine on that checkpoint, loaded as a downloaded voice is (deterministic noise)."""
    from channels.tts import load_engine

    return load_engine(settings.replace(tts_engine="coqui", tts_voice=str(coqui_vits)), deterministic=True)


@pytest.fixture(scope="session")
def recogniser(settings):
    """The default recogniser: faster-whisper on the packaged Whisper base."""
    from channels.asr import load_engine

    return load_engine(settings)


@pytest.fixture(scope="session")
def spoken_request(piper, tmp_path_factory) -> Path:
    """A real spoken customer request (Piper voice), saved as 16-bit WAV."""
    from channels.audio import write_wav

    return write_wav(tmp_path_factory.mktemp("audio") / "card_request.wav", piper.synthesize(CARD_REQUEST),
                     piper.sample_rate)


def cli_environment(env: dict | None = None) -> dict:
    """The environment ``support-agent`` runs in here: this one, the checkout importable, and ``env``."""
    return {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}


def run_cli(*args: str, stdin: bytes | None = None, env: dict | None = None, timeout: int = 300):
    """Run ``support-agent`` as a user would; returns the CompletedProcess (bytes)."""
    return subprocess.run([*CLI, *args], input=stdin, capture_output=True, env=cli_environment(env), cwd=REPO,
                          timeout=timeout)


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level edit distance over the reference length."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(len(ref), 1)


def one_line_error(proc) -> str:
    """Assert the process failed with exactly one line on stderr and no traceback; return it."""
    err = proc.stderr.decode()
    assert proc.returncode != 0, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The team that logs in to the shared demo: name and password (tests/test_serve.py, tests/test_browser.py).
TEAM = {"anna": "anna-password-1", "ben": "ben-password-22", "chloe": "chloe-password-333",
        "dev": "dev-password-4444"}
LOAD_QUEUE_SIZE = 6  # the shared demo's queue_size: small, so the load test meets a full queue


def add_users(users_file: Path, team: dict[str, str]) -> Path:
    """``support-agent users add`` for each member, the password on standard input as a user gives it."""
    for name, password in team.items():
        proc = run_cli("--set", f"users_file={users_file}", "users", "add", name, stdin=f"{password}\n".encode())
        assert proc.returncode == 0, proc.stderr.decode()
    return users_file


@dataclasses.dataclass
class Demo:
    url: str
    feedback: Path
    audit: Path
    output: Path  # the demo's stdout and stderr: its logs
    proc: subprocess.Popen

    def __getitem__(self, index):  # demo[0], demo[1]: the URL and the feedback file, as before logins
        return (self.url, self.feedback)[index]


@contextlib.contextmanager
def serve_demo(cache_dir, workdir: Path, *args: str, start_s: float = 180, env: dict | None = None):
    """``python demo.py`` on a free port, as a user starts it, its output in ``workdir/demo.log``; yields a
    ``Demo`` once the first page is served."""
    port = free_port()
    feedback, audit, output = workdir / "feedback.jsonl", workdir / "audit.jsonl", workdir / "demo.log"
    env = {**os.environ, "PYTHONPATH": str(REPO), "SUPPORT_AGENT_CACHE_DIR": str(cache_dir),
           "SUPPORT_AGENT_FEEDBACK_FILE": str(feedback), "SUPPORT_AGENT_AUDIT_FILE": str(audit),
           "SUPPORT_AGENT_OUTBOX": str(workdir / "outbox"), **(env or {})}  # where an IMAP pass keeps its state
    with open(output, "wb") as out:
        proc = subprocess.Popen([sys.executable, "demo.py", "--port", str(port), *args], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + start_s
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail("demo exited early:\n" + output.read_text(errors="replace"))
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.time() > deadline:
                    pytest.fail(f"demo did not serve within {start_s} s")
                time.sleep(0.5)
        yield Demo(url, feedback, audit, output, proc)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="session")
def demo(cache_dir, tmp_path_factory) -> Demo:
    """One demo server for the API and browser tests (starting one takes tens of seconds), served to a team
    as a team would: a users file, the logs at INFO (read back by the tests), and a small queue."""
    workdir = tmp_path_factory.mktemp("demo")
    users_file = add_users(workdir / "team.users", TEAM)
    with serve_demo(cache_dir, workdir, "--set", f"users_file={users_file}", "--set", "log_level=INFO",
                    "--set", f"queue_size={LOAD_QUEUE_SIZE}") as served:
        yield served
