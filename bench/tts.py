"""TTS benchmark: time to first audio, real-time factor and the Whisper round trip, both engines side by side.

    python bench/tts.py [--engines piper,coqui] [--coqui-voice MODEL[:SPEAKER]] [--runs 5] [--no-round-trip]
                        [--json FILE]

Each engine speaks the same customer-service replies, full of amounts in several currencies, dates,
references, phone numbers and abbreviations, with its model already loaded. Time to first audio is the
wait for the first chunk of ``stream(reply)``, and its share the fraction of the whole reply's synthesis
time spent before that chunk (streaming must keep it well under 0.5); the real-time factor is synthesis time over audio duration
for whole replies. Figures are medians over ``--runs`` runs of every reply. The round trip transcribes
each reply with the default recogniser (faster-whisper, packaged Whisper base) and reports the WER after
both sides are put in spoken form by ``channels.speech_text`` (so "£25.50" heard back as "25 pounds and
50 pence" counts as right). Without ``--coqui-voice``, Coqui speaks a VITS of the released LJSpeech
architecture with random weights (bench/random_vits.py): its words are noise, so it has no round trip, and
its durations are far shorter than speech, so its real-time factor overstates the cost of a trained
voice's; the median synthesis time of a whole reply (the same text for both engines) is printed beside it. The machine's load average is printed with the figures: timings taken beside
other work are not comparable.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPLIES = [
    "Your refund of £25.50 was sent on 12/03/2026 for order 48213. It should reach your account within "
    "3 to 5 working days. If it has not arrived by then, please reply to this email.",
    "I can see the £1,200 payment from your card ending in 4321. Card payments usually show as pending for "
    "up to 7 days, e.g. at hotels. You can call us on 0800 555 0199 at any time.",
    "Your case reference is KB-48213. The exchange fee is 2.5% and the daily limit is $3,000. We aim to "
    "reply within 10 working days, approx. 2 weeks.",
    "Your refund of €42.90 was approved on 5 March. The fee of $19.99 taken on 2026-01-05 will be returned "
    "by Friday, under reference RF-20931.",
    "We charged CHF 1,250.75 and £3.05 to your card ending in 7719 on 14/02/2026. Please call us on "
    "020 7946 0018 about case KB-55102.",
    "The transfer of ₹45,000 and A$260.40 left on the 3rd of March. The fee of 7.10 PLN for order 771234 was "
    "refunded on 9 April, and C$15.25 will follow.",
]


def words(text: str) -> list[str]:
    """The words of ``text`` in spoken form, lower case, punctuation dropped."""
    from channels.speech_text import prepare

    return re.sub(r"[^a-z0-9' ]+", " ", prepare(text).lower()).split()


def bench_engine(name: str, voice: str | None, runs: int, round_trip) -> dict:
    from agent.settings import Settings
    from agent.types import AgentError
    from channels import tts

    settings = Settings().replace(tts_engine=name, tts_voice=voice)
    started = time.perf_counter()
    try:
        engine = tts.load_engine(settings)
    except AgentError as exc:
        return {"engine": name, "error": str(exc)}
    load_s = time.perf_counter() - started
    engine.synthesize("Hello.")  # the first call builds the runtime's graph: not part of any reply's wait
    first, rtf, took, audio_s = [], [], [], 0.0
    for _ in range(runs):
        for reply in REPLIES:
            started = time.perf_counter()
            chunks = engine.stream(reply)
            pieces = [next(chunks)]
            first.append(time.perf_counter() - started)
            pieces += list(chunks)
            elapsed = time.perf_counter() - started
            duration = sum(map(len, pieces)) / engine.sample_rate
            rtf.append(elapsed / duration)
            took.append(elapsed)
            audio_s += duration
    result = {"engine": name, "voice": settings.tts_voice, "sample_rate": engine.sample_rate,
              "load_s": round(load_s, 2), "first_audio_s": round(statistics.median(first), 3),
              "first_audio_max_s": round(max(first), 3), "real_time_factor": round(statistics.median(rtf), 3),
              "reply_synthesis_s": round(statistics.median(took), 3),
              "first_audio_share": round(statistics.median(f / t for f, t in zip(first, took)), 3),
              "audio_s": round(audio_s, 1)}
    if round_trip is not None:
        result.update(round_trip(engine))
    return result


def whisper_round_trip():
    """A function giving an engine's WER through the default recogniser (loaded once)."""
    import jiwer

    from agent.settings import Settings
    from channels import asr, audio

    recogniser = asr.load_engine(Settings())

    def round_trip(engine) -> dict:
        refs, hyps = [], []
        for reply in REPLIES:
            heard = recogniser.transcribe(audio.resample(engine.synthesize(reply), engine.sample_rate,
                                                         audio.SAMPLE_RATE)).text
            refs.append(" ".join(words(reply)))
            hyps.append(" ".join(words(heard)))
        return {"round_trip_wer": round(jiwer.wer(refs, hyps), 4), "heard": hyps}
    return round_trip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engines", default="piper,coqui")
    p.add_argument("--coqui-voice", default="",
                   help="a Coqui model name (downloaded by Coqui when online) or a checkpoint (default: a VITS "
                   "with random weights, for speed only)")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--no-round-trip", dest="round_trip", action="store_false")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    round_trip = whisper_round_trip() if args.round_trip else None
    results = []
    for name in args.engines.split(","):
        voice, trip = None, round_trip
        if name == "coqui":
            voice = args.coqui_voice or random_voice()
            trip = round_trip if args.coqui_voice else None  # random weights say no words
        result = bench_engine(name, voice, args.runs, trip)
        result["load_average"] = [round(x, 1) for x in os.getloadavg()]
        result["cpus"] = os.cpu_count()
        print(json.dumps(result), flush=True)
        results.append(result)
    print_side_by_side(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


def random_voice() -> str:
    """A VITS of the released LJSpeech architecture with random weights, written where it is forgotten."""
    import tempfile

    from random_vits import write_random_vits  # beside this script

    return str(write_random_vits(Path(tempfile.mkdtemp(prefix="random-vits-")) / "voice"))


def print_side_by_side(results: list[dict]) -> None:
    rows = [("engine", "engine"), ("rate (Hz)", "sample_rate"), ("load (s)", "load_s"),
            ("first audio (s)", "first_audio_s"), ("first audio max (s)", "first_audio_max_s"),
            ("real-time factor", "real_time_factor"), ("reply synthesis (s)", "reply_synthesis_s"),
            ("first audio share", "first_audio_share"),
            ("audio made (s)", "audio_s"),
            ("round-trip WER", "round_trip_wer"), ("load average", "load_average")]
    print("", file=sys.stderr)
    for label, key in rows:
        print(f"{label:<20}" + "".join(f"{str(r.get(key, '-')):>22}" for r in results), file=sys.stderr)
    for r in results:
        if "error" in r:
            print(f"{r['engine']}: {r['error']}", file=sys.stderr)


if __name__ == "__main__":
    main()
