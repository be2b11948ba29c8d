"""Demo under load: how long a 10-second call takes to answer while a team keeps the demo busy.

    python bench/load.py [--probes 8] [--load-users 3] [--in-flight 2] [--json FILE]

Starts ``python demo.py`` with a users file (four users, default limits), logs in with ``gradio_client`` as
a team would, and answers a 10-second call (the bench/demo.py recording) from one user: first with the demo
idle (the obvious alternative, same run), then ``--probes`` times while the other users keep ``--in-flight``
requests each going (a call for every three emails). Times run from submitting the call to its answer
(transcript, reply and spoken reply), queueing included. Prints one JSON object: medians and p95, how many
load requests were answered and refused as busy, and the time to the first page afterwards.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
_spec = importlib.util.spec_from_file_location("bench_demo", REPO / "bench" / "demo.py")
bench_demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_demo)

EMAIL = b"""From: "Smith, Anna" <anna.smith@example.org>
To: Kestrel Bank Support <support@kestrel.example>
Subject: Charged twice
Message-ID: <bench@example.org>
Content-Type: text/plain; charset=utf-8

Hello, I was charged twice for the same payment of 42.10 GBP at the cafe. Please refund one.
"""


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def timed_call(client, wav: Path) -> float:
    from gradio_client import handle_file

    started = time.perf_counter()
    out = client.predict(handle_file(str(wav)), api_name="/answer_call")
    if out[1]["label"] != "card_arrival":
        raise SystemExit(f"wrong answer under load: {out[1]['label']}")
    return time.perf_counter() - started


def keep_busy(client, wav: Path, eml: Path, in_flight: int, stop: threading.Event, counts: dict) -> None:
    """``in_flight`` requests going at once until ``stop``: a call for every three emails."""
    from gradio_client import handle_file

    def worker(offset: int) -> None:
        n = offset
        while not stop.is_set():
            try:
                if n % 4 == 0:
                    client.predict(handle_file(str(wav)), api_name="/answer_call")
                else:
                    client.predict(handle_file(str(eml)), "", api_name="/answer_email")
                counts["answered"] += 1
            except Exception as exc:  # noqa: BLE001 - counted by kind, the bench goes on
                counts["busy" if str(exc).startswith("Busy") else "failed"] += 1
                time.sleep(0.5)
            n += 1

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(in_flight)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--probes", type=int, default=8)
    p.add_argument("--load-users", type=int, default=3)
    p.add_argument("--in-flight", type=int, default=2)
    p.add_argument("--json", help="also write the result here")
    args = p.parse_args()
    from gradio_client import Client

    from channels import users

    work = Path(tempfile.mkdtemp(prefix="bench-load-"))
    team = {f"user{i}": f"password-{i}-long" for i in range(args.load_users + 1)}
    for name, password in team.items():
        users.add(work / "team.users", name, password)
    wav = bench_demo.recording(work / "call-10s.wav")
    eml = work / "email.eml"
    eml.write_bytes(EMAIL)
    proc, url, _ = bench_demo.start_demo(work / "feedback.jsonl", "--set", f"users_file={work / 'team.users'}")
    try:
        clients = [Client(url, auth=item, verbose=False) for item in team.items()]
        probe, loaders = clients[0], clients[1:]
        timed_call(probe, wav)  # warm-up: one-off costs in Gradio and the models
        idle = [timed_call(probe, wav) for _ in range(3)]
        print(f"idle: {[round(t, 2) for t in idle]}", file=sys.stderr)
        stop, counts = threading.Event(), {"answered": 0, "busy": 0, "failed": 0}
        load = [threading.Thread(target=keep_busy, args=(c, wav, eml, args.in_flight, stop, counts))
                for c in loaders]
        for t in load:
            t.start()
        time.sleep(5)  # the queue fills
        loaded, refused = [], 0
        for i in range(args.probes):
            try:
                loaded.append(timed_call(probe, wav))
                print(f"loaded call {i + 1}: {loaded[-1]:.2f} s ({counts})", file=sys.stderr)
            except Exception as exc:  # noqa: BLE001
                if not str(exc).startswith("Busy"):
                    raise
                refused += 1
        stop.set()
        for t in load:
            t.join()
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=10) as r:
            r.read()
        first_page = time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    result = {"idle_10s_call_median_s": round(statistics.median(idle), 2),
              "loaded_10s_call_median_s": round(statistics.median(loaded), 2) if loaded else None,
              "loaded_10s_call_p95_s": round(p95(loaded), 2) if loaded else None,
              "probes_answered": len(loaded), "probes_refused_busy": refused, "load_requests": counts,
              "load_users": args.load_users, "in_flight_per_user": args.in_flight,
              "first_page_after_s": round(first_page, 3), "idle_s": [round(t, 2) for t in idle],
              "loaded_s": [round(t, 2) for t in loaded], "cpus": os.cpu_count(), "load_average": os.getloadavg()}
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
