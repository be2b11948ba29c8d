"""Shared, session-scoped fixtures: models load once; recordings are spoken by the packaged voice."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # every test runs on packaged weights; a hub call would be a bug
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

from agent.pipeline import Agent  # noqa: E402
from agent.settings import Settings  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "channels.cli"]

CARD_REQUEST = "Hello, I ordered a new bank card two weeks ago, but it still has not arrived. Where is it?"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def settings(cache_dir) -> Settings:
    return Settings(cache_dir=str(cache_dir))


@pytest.fixture(scope="session")
def agent(settings) -> Agent:
    return Agent(settings).warm_up()


@pytest.fixture(scope="session")
def piper(settings):
    from channels.tts import PiperEngine

    return PiperEngine(settings, deterministic=True)


@pytest.fixture(scope="session")
def spoken_request(piper, tmp_path_factory) -> Path:
    """A real spoken customer request (Piper voice), saved as 16-bit WAV."""
    from channels.audio import write_wav

    return write_wav(tmp_path_factory.mktemp("audio") / "card_request.wav", piper.synthesize(CARD_REQUEST),
                     piper.sample_rate)


def run_cli(*args: str, stdin: bytes | None = None, env: dict | None = None, timeout: int = 300):
    """Run ``support-agent`` as a user would; returns the CompletedProcess (bytes)."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([*CLI, *args], input=stdin, capture_output=True, env=full_env, cwd=REPO,
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
