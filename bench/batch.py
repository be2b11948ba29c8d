"""``support-agent batch`` against the single-item commands run sequentially, in one run.

    python bench/batch.py [--clips 256] [--calls 6] [--call-s 60] [--messages 2000] [--overhead-items 20]
                          [--kills 3] [--steady] [--json FILE]

Archives built here: short clips (customer questions from the held-out intent set, spoken by the
packaged Piper voice, 2 to 6 s each) and 60-second calls (those clips joined with pauses), and typed
messages (the held-out set's texts). For each archive it times, as a user runs them (each command a
process of its own, model loading and Ray's start included, default settings):

* ``support-agent transcribe FILES`` / ``classify -``: today's single process, using every core;
* ``support-agent batch ... --workers 1`` and ``--workers 2``: workers of one core each on a Ray
  instance the command starts on this machine;

and reports items/s for each (with ``--steady``, also once started: see ``transcription``), the
2-worker/1-worker ratio, and whether every batch row is what the
command printed for the same item (``seconds``, a timing, apart). Then the Ray overhead on a small
archive (``--overhead-items``), and runs killed at a random point (SIGKILL to the command) and resumed:
every item exactly once in the results, and the resumed run did only what was missing.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CLI = [sys.executable, "-m", "channels.cli"]


def command(*args: str, stdin: bytes | None = None) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    proc = subprocess.run([*CLI, *args], input=stdin, capture_output=True, cwd=REPO, env=_env())
    seconds = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        sys.exit(f"{' '.join(args[:3])} failed: {proc.stderr.decode()[-2000:]}")
    return seconds, proc


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def batch(what: str, inputs: list[str], out: Path, *extra: str) -> tuple[float, list[dict], dict]:
    seconds, proc = command("batch", what, *inputs, "--out", str(out), *extra)
    if proc.returncode:
        sys.exit(f"batch {what} failed: {proc.stderr.decode()[-2000:]}")
    import pyarrow.parquet as pq

    return seconds, pq.read_table(out).to_pylist(), json.loads(proc.stdout)


def differing(expected: list[dict], rows: list[dict], key: str) -> int:
    """Items whose batch row differs from what the command printed (timings apart)."""
    by_item = {r[key]: r for r in rows}
    return sum(any(v != by_item.get(e[key], {}).get(k) for k, v in e.items() if k != "seconds") for e in expected)


def spoken_archive(folder: Path, clips: int, calls: int, call_s: float) -> tuple[list[str], list[str]]:
    from agent.settings import Settings
    from channels import audio
    from channels.tts import PiperEngine

    texts = [json.loads(line)["text"] for line in open(REPO / "data/heldout/intent.jsonl", encoding="utf-8")]
    texts = [t for t in texts if 25 <= len(t) <= 90]
    voice = PiperEngine(Settings(), deterministic=True)
    spoken = []
    for i in range(max(clips, 30)):
        samples = audio.resample(voice.synthesize(texts[i % len(texts)]), voice.sample_rate, audio.SAMPLE_RATE)
        spoken.append(samples)
        if i < clips:
            audio.write_wav(folder / "clips" / f"clip{i:04d}.wav", samples, audio.SAMPLE_RATE)
    pause = np.zeros(audio.SAMPLE_RATE, np.float32)
    rng = random.Random(13)
    for c in range(calls):
        pieces, length = [], 0
        while length < call_s * audio.SAMPLE_RATE:
            piece = spoken[rng.randrange(len(spoken))]
            pieces += [piece, pause]
            length += piece.size + pause.size
        audio.encode(folder / "calls" / f"call{c}.mp3", np.concatenate(pieces)[:int(call_s * audio.SAMPLE_RATE)],
                     audio.SAMPLE_RATE)
    return (sorted(str(p) for p in (folder / "clips").iterdir()), sorted(str(p) for p in (folder / "calls").iterdir()))


def transcription(name: str, files: list[str], work: Path, steady: bool = False) -> dict:
    """Items/s of the sequential command and of 1 and 2 workers, whole commands timed. ``steady``: also
    each worker count's throughput once started, from a run on the first half of the archive:
    (items of the second half) / (whole run - half run), so Ray's start and model loading, paid once
    per run, fall out."""
    seq_s, proc = command("transcribe", *files)
    expected = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    result = {"items": len(files), "sequential_s": round(seq_s, 1), "sequential_items_per_s": round(len(files) / seq_s, 3)}
    half = files[:len(files) // 2]
    for workers in (1, 2):
        seconds, rows, _ = batch("transcribe", files, work / f"{name}-{workers}", "--workers", str(workers))
        result[f"workers_{workers}_s"] = round(seconds, 1)
        result[f"workers_{workers}_items_per_s"] = round(len(files) / seconds, 3)
        result[f"workers_{workers}_differing"] = differing(expected, rows, "file")
        if steady:
            half_s, _, _ = batch("transcribe", half, work / f"{name}-{workers}-half", "--workers", str(workers))
            result[f"workers_{workers}_half_s"] = round(half_s, 1)
            result[f"workers_{workers}_steady_items_per_s"] = round((len(files) - len(half)) / (seconds - half_s), 3)
    result["two_over_one"] = round(result["workers_1_s"] / result["workers_2_s"], 2)
    result["two_over_sequential"] = round(result["sequential_s"] / result["workers_2_s"], 2)
    if steady:
        result["two_over_one_steady"] = round(result["workers_2_steady_items_per_s"] / result["workers_1_steady_items_per_s"], 2)
    return result


def classification(count: int, work: Path) -> dict:
    texts = [json.loads(line)["text"].replace("\n", " ") for line in open(REPO / "data/heldout/intent.jsonl", encoding="utf-8")]
    texts = (texts * (count // len(texts) + 1))[:count]
    manifest = work / "messages.txt"
    manifest.write_text("".join(t + "\n" for t in texts))
    seq_s, proc = command("classify", "-", stdin=manifest.read_bytes())
    expected = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    result = {"items": count, "sequential_s": round(seq_s, 1), "sequential_items_per_s": round(count / seq_s, 1)}
    for workers in (1, 2):
        seconds, rows, _ = batch("classify", [str(manifest)], work / f"messages-{workers}", "--workers", str(workers))
        result[f"workers_{workers}_s"] = round(seconds, 1)
        result[f"workers_{workers}_items_per_s"] = round(count / seconds, 1)
        by_source = {int(r["source"].rsplit(":", 1)[1]): r for r in rows}
        result[f"workers_{workers}_differing"] = sum(
            any(v != by_source[i].get(k) for k, v in e.items()) for i, e in enumerate(expected, 1))
    return result


def kills(files: list[str], trials: int, work: Path) -> list[dict]:
    """Runs killed at a random point after their first rows were written, then resumed."""
    out = []
    for trial in range(trials):
        folder = work / f"killed-{trial}"
        args = [*CLI, "batch", "transcribe", *files, "--no-pack", "--out", str(folder)]
        proc = subprocess.Popen(args, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not any(folder.glob(".parts/part-*")) and proc.poll() is None:
            time.sleep(0.2)
        time.sleep(random.uniform(0, 8))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        import pyarrow.parquet as pq

        written = sum(pq.read_table(p).num_rows for p in folder.glob(".parts/part-*.parquet"))
        _, rows, summary = batch("transcribe", files, folder, "--no-pack", "--resume")
        sources = [r["source"] for r in rows]
        out.append({"written_before_kill": written, "resumed_processed": summary["processed"],
                    "rows": len(rows), "each_item_once": sorted(sources) == sorted(files),
                    "no_work_repeated": summary["processed"] == len(files) - written})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=256)
    p.add_argument("--calls", type=int, default=6)
    p.add_argument("--call-s", type=float, default=60.0)
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--overhead-items", type=int, default=20)
    p.add_argument("--kills", type=int, default=3)
    p.add_argument("--steady", action="store_true",
                   help="also time each archive's first half, for the throughput once started")
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    (work / "clips").mkdir()
    (work / "calls").mkdir()
    clips, calls = spoken_archive(work, args.clips, args.calls, args.call_s)
    figures = {"cores": len(os.sched_getaffinity(0)), "load_average_at_start": os.getloadavg()[0]}
    if args.clips:
        figures["short_clips"] = transcription("clips", clips, work, steady=args.steady)
        print(json.dumps({"short_clips": figures["short_clips"]}), flush=True)
    if args.calls:
        figures["calls"] = transcription("calls", calls, work, steady=args.steady)
        print(json.dumps({"calls": figures["calls"]}), flush=True)
    if args.messages:
        figures["classify"] = classification(args.messages, work)
        print(json.dumps({"classify": figures["classify"]}), flush=True)
    if args.overhead_items:
        small = clips[:args.overhead_items]
        seq_s, _ = command("transcribe", *small)
        batch_s, _, _ = batch("transcribe", small, work / "overhead")
        figures["overhead"] = {"items": len(small), "sequential_s": round(seq_s, 1), "batch_s": round(batch_s, 1),
                               "overhead_s": round(batch_s - seq_s, 1)}
        print(json.dumps({"overhead": figures["overhead"]}), flush=True)
    if args.kills:
        figures["killed_and_resumed"] = kills(clips[:24], args.kills, work)
        print(json.dumps({"killed_and_resumed": figures["killed_and_resumed"]}), flush=True)
    figures["load_average_at_end"] = os.getloadavg()[0]
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
