"""Demo bench, in a real browser (Debian's chromium through Playwright), as a user meets the demo.

    python bench/demo.py [--starts 3] [--calls 5] [--json FILE]

* start: from running ``python demo.py`` to its first page served, models included (a fresh process each time).
* call: from choosing a 10-second call recording in the page to the answer shown there (transcript, intent,
  reply text and the spoken reply's audio; the text comes first and is timed too), models already loaded;
  each run in a fresh page. The recording is
  a customer's request spoken by the packaged Piper voice (deterministic), as a 16 kHz WAV.

Prints one JSON object with the medians (and every run); figures depend on what else the machine runs.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

REQUEST = ("Hello, I ordered a new bank card two weeks ago and it still has not arrived. I need it for a trip "
           "next week. Can you tell me where it is?")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def recording(path: Path, seconds: float = 10.0) -> Path:
    """The request spoken by the packaged voice, padded with silence to ``seconds``."""
    import numpy as np

    from agent.settings import Settings
    from channels import audio
    from channels.tts import PiperEngine

    piper = PiperEngine(Settings(), deterministic=True)
    speech = audio.resample(piper.synthesize(REQUEST), piper.sample_rate, audio.SAMPLE_RATE)
    total = int(seconds * audio.SAMPLE_RATE)
    if speech.size > total:
        raise SystemExit(f"the request lasts {speech.size / audio.SAMPLE_RATE:.1f} s, more than {seconds} s")
    pad = (total - speech.size) // 2
    return audio.write_wav(path, np.concatenate([np.zeros(pad, np.float32), speech,
                                                 np.zeros(total - speech.size - pad, np.float32)]), audio.SAMPLE_RATE)


def start_demo(feedback: Path, *args: str) -> tuple[subprocess.Popen, str, float]:
    """``python demo.py ARGS`` on a free port: the process, its URL and the seconds to its first page."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO), "SUPPORT_AGENT_FEEDBACK_FILE": str(feedback),
           "SUPPORT_AGENT_AUDIT_FILE": str(feedback.with_name("audit.jsonl"))}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "demo.py", "--port", str(port), *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    while proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return proc, url, time.perf_counter() - started
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the demo exited before serving a page")


def answer_in_page(browser, url: str, wav: Path) -> dict:
    page = browser.new_page()
    try:
        page.set_default_timeout(300_000)
        page.goto(url)
        page.wait_for_selector("#call-recording input[type=file]", state="attached")
        started = time.perf_counter()
        page.locator("#call-recording input[type=file]").set_input_files(str(wav))
        page.wait_for_function("document.querySelector('#call-reply textarea').value.length > 0")
        text = time.perf_counter() - started  # transcript, intent and reply text are shown together
        page.wait_for_selector("#call-audio a[download][href*='reply.wav']", state="attached")
        seconds = time.perf_counter() - started
        return {"seconds": round(seconds, 2), "text_seconds": round(text, 2),
                "intent": page.locator("#call-intent [data-testid=label-output-value]").inner_text(),
                "stages": page.locator("#call-timings").inner_text()}
    finally:
        page.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--starts", type=int, default=3)
    p.add_argument("--calls", type=int, default=5)
    p.add_argument("--json", help="also write the result here")
    args = p.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("needs Debian's chromium on PATH (scripts/setup.sh installs it)")
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="bench-demo-"))
    wav = recording(work / "call-10s.wav")
    starts, calls = [], []
    for i in range(args.starts):
        proc, url, seconds = start_demo(work / "feedback.jsonl")
        starts.append(round(seconds, 2))
        print(f"start {i + 1}: {seconds:.1f} s", file=sys.stderr)
        if i < args.starts - 1:
            proc.terminate()
            proc.wait()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            answer_in_page(browser, url, wav)  # warm-up: the first request pays one-off costs in Gradio
            for i in range(args.calls):
                calls.append(answer_in_page(browser, url, wav))
                print(f"call {i + 1}: text {calls[-1]['text_seconds']:.2f} s, audio {calls[-1]['seconds']:.2f} s "
                      f"({calls[-1]['stages']})", file=sys.stderr)
            browser.close()
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    result = {"start_to_first_page_s": statistics.median(starts),
              "upload_to_answer_10s_call_s": statistics.median(c["seconds"] for c in calls),
              "upload_to_reply_text_10s_call_s": statistics.median(c["text_seconds"] for c in calls),
              "starts_s": starts, "calls": calls, "cpus": os.cpu_count(), "load_average": os.getloadavg()}
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
