"""ASR benchmark: faster-whisper beside openai-whisper, same weights, same audio, one run.

    python bench/asr.py [--models tiny.en,base] [--engines faster-whisper,openai-whisper] [--sentences 20]
                        [--beam-size 5] [--clips 100] [--clip-engines faster-whisper] [--call-s 60] [--snr-db 20]
                        [--two-party-engines faster-whisper,openai-whisper] [--json FILE]

The bench builds its own spoken test set: customer-service sentences written here (many with amounts,
dates, card digits and references), spoken by the packaged Piper voice (deterministic), in two variants:
``clean`` (the voice at 16 kHz) and ``phone`` (band-limited to 300-3400 Hz, 8 kHz, white noise at
``--snr-db`` (20 dB) against the speech, stored as mu-law WAV and decoded back, as a telephone recording
arrives). Texts are compared
after openai-whisper's English text normaliser, with jiwer; spoken-number errors are reported apart
(the share of number words in the references not recognised exactly). WER is given for the transcript
(numbers written as said, ``channels/spoken_numbers.py``) and for Whisper's own words (``raw``). The
references write what the voice says: "7 3 1 9" said digit by digit is the reference 7319.

Two-party calls (``bench/calls.py``: the agent in espeak-ng's voice, the customer in Piper's, 0.5-0.8 s
between turns, references and amounts said in words) are transcribed as stereo, mixed to mono, and mixed to
mono over the telephone line: whether the turns come in the script's order, the largest error of a turn's
start, the diarization error rate with a 0.25 s collar (pyannote.metrics), and how many of the references
and amounts said come back exactly right, in the transcript and in Whisper's own words (before
``spoken_numbers``). On a 60 s two-party mono call it times the diarization: the engine alone, and the
whole transcription with diarization on and off, alternating (medians of 3).

For each model and engine it reports WER, real-time factor (transcription time / audio time) and
peak memory (each configuration runs in its own process, so the figure is that engine's), the time
for one 60-second mono call, and for short clips (3 s each) the throughput one at a time against
``transcribe_many`` (several clips packed into each 30 s Whisper window).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import calls  # noqa: E402

SENTENCES = [
    "Hello, I ordered a new card two weeks ago and it still has not arrived.",
    "I was charged twice for the same payment of 12 pounds at a coffee shop.",
    "My card ending 4217 was declined at the supermarket this morning.",
    "Can you tell me why my transfer of 250 pounds is still pending?",
    "I would like to close my account and move my savings elsewhere.",
    "Someone stole my phone yesterday, please freeze my card right away.",
    "The exchange rate on my last payment in euros looks wrong to me.",
    "How long does it take for a top up by bank transfer to arrive?",
    "I need to change the address on my account because I moved house.",
    "There is a payment of 39 pounds 99 that I do not recognise at all.",
    "My salary was paid on the 28th but I cannot see it in my balance.",
    "Why was I charged a fee of 2 pounds for withdrawing cash?",
    "I forgot my passcode and now the app has locked me out.",
    "Please send me a new card, mine expires at the end of March.",
    "The cash machine kept my card but gave me no money.",
    "I made a transfer to the wrong account, can it be cancelled?",
    "How do I verify my identity? The app keeps rejecting my photo.",
    "My refund of 45 pounds from an online shop has not come through.",
    "Can I have a virtual card for shopping online?",
    "I am travelling to Spain next week, will my card work there?",
    "The contactless payment did not work at the train station today.",
    "Is there a limit on how much I can withdraw in one day?",
    "I received a text message asking for my PIN, is that from you?",
    "My direct debit of 60 pounds was taken twice this month.",
    "Could you explain the charge of 5 pounds on my statement?",
    "I want to add money with my Apple Pay, how does that work?",
    "My daughter is 16, can she open an account with you?",
    "The transfer reference was 7 3 1 9 and it has not arrived.",
    "I lost my wallet on the bus on Tuesday evening.",
    "How can I change my PIN to something easier to remember?",
    "My account was blocked after I logged in from a new phone.",
    "Why is my card payment still showing as pending after 3 days?",
    "I would like to dispute a payment to a hotel in Paris.",
    "Can I get my statements for the last 6 months as a file?",
    "The beneficiary says they never received my 100 pound payment.",
    "Please update my phone number, the old one no longer works.",
    "I think somebody used my card details without my permission.",
    "Do you charge anything for holding money in dollars?",
    "The top up of 20 pounds failed but the money left my bank.",
    "Thank you, that answers my question, have a good day.",
]

SHORT = [  # short requests for the clip-throughput test (each under 3 s when spoken)
    "My card is blocked.", "Where is my refund?", "I lost my card.", "Cancel my transfer.",
    "Reset my passcode.", "What is this fee?", "My top up failed.", "Close my account.",
    "Is my card on the way?", "Freeze my card please.", "Change my address.", "I was charged twice.",
    "Why is it pending?", "Can I pay in euros?", "Unlock my account.", "Send a new card.",
    "The app will not open.", "Check my balance.", "My PIN is blocked.", "Add a new payee.",
    "Is there a daily limit?", "Dispute a payment.", "My salary is missing.", "Update my number.",
    "Order a virtual card.",
]

# What the voice says differently from how it is written: the reference is the written form.
WRITTEN = {"The transfer reference was 7 3 1 9 and it has not arrived.":
           "The transfer reference was 7319 and it has not arrived.",
           "There is a payment of 39 pounds 99 that I do not recognise at all.":
           "There is a payment of £39.99 that I do not recognise at all."}
CLIP_S = 3.0


def say(piper, text: str) -> np.ndarray:
    from channels import audio

    return audio.resample(piper.synthesize(text), piper.sample_rate, audio.SAMPLE_RATE)


def telephone(samples: np.ndarray, rng: np.random.Generator, work: Path, name: str, snr_db: float) -> np.ndarray:
    """300-3400 Hz at 8 kHz, white noise ``snr_db`` below the speech, mu-law WAV, decoded back to 16 kHz."""
    from channels import audio

    narrow = audio.resample(samples, audio.SAMPLE_RATE, 8000)
    spectrum = np.fft.rfft(narrow)
    freqs = np.fft.rfftfreq(narrow.size, 1 / 8000)
    spectrum[(freqs < 300) | (freqs > 3400)] = 0
    band = np.fft.irfft(spectrum, narrow.size).astype(np.float32)
    speech_power = float(np.mean(band[np.abs(band) > 0.01] ** 2)) if np.any(np.abs(band) > 0.01) else 1e-4
    noisy = band + rng.normal(0, np.sqrt(speech_power / 10 ** (snr_db / 10)), band.size).astype(np.float32)
    path = audio.encode(work / f"{name}.wav", np.clip(noisy, -1, 1), 8000, codec="pcm_mulaw")
    return audio.decode(path)


def build(work: Path, n_sentences: int, n_clips: int, call_s: float, snr_db: float) -> dict:
    """Write the spoken test set under ``work``; returns the references."""
    from agent.settings import Settings
    from channels.audio import SAMPLE_RATE
    from channels.tts import PiperEngine

    piper = PiperEngine(Settings(), deterministic=True)
    rng = np.random.default_rng(7)
    sentences = SENTENCES[:n_sentences]
    refs: dict = {"clean": [], "phone": [], "call": "", "clips": []}
    for i, text in enumerate(sentences):
        clean = say(piper, text)
        np.save(work / f"clean-{i}.npy", clean)
        np.save(work / f"phone-{i}.npy", telephone(clean, rng, work, f"phone-{i}", snr_db))
        refs["clean"].append(WRITTEN.get(text, text))
        refs["phone"].append(WRITTEN.get(text, text))
    pieces, used, pause = [], 0, np.zeros(int(0.7 * SAMPLE_RATE), np.float32)
    for text in SENTENCES * 2:  # a one-minute call: sentences with pauses, silence to the end
        speech = say(piper, text)
        if used + speech.size + pause.size > call_s * SAMPLE_RATE:
            break
        pieces += [speech, pause]
        used += speech.size + pause.size
        refs["call"] += " " + WRITTEN.get(text, text)
    pieces.append(np.zeros(int(call_s * SAMPLE_RATE) - used, np.float32))
    np.save(work / "call.npy", np.concatenate(pieces))
    for i in range(n_clips):  # 3 s each: the phrase, then silence; every other one over the phone
        text = SHORT[(i // 2) % len(SHORT)]
        speech = say(piper, text)[: int(CLIP_S * SAMPLE_RATE)]
        clip = np.concatenate([speech, np.zeros(int(CLIP_S * SAMPLE_RATE) - speech.size, np.float32)])
        if i % 2:
            clip = telephone(clip, rng, work, f"clip-{i}", snr_db)[: int(CLIP_S * SAMPLE_RATE)]
        np.save(work / f"clip-{i}.npy", clip)
        refs["clips"].append(text)
    refs["two_party"] = []
    for call in [*calls.test_calls(piper), calls.long_call(piper, call_s)]:
        np.save(work / f"two-party-{call.name}.npy", call.stereo)
        np.save(work / f"two-party-{call.name}-phone.npy", telephone(call.mono, rng, work, call.name, snr_db))
        refs["two_party"].append({"name": call.name, "turns": [asdict(t) for t in call.turns],
                                  "references": call.references, "amounts": call.amounts})
    (work / "refs.json").write_text(json.dumps(refs))
    return refs


def raw_text(transcript) -> str:
    """Whisper's own words, before numbers are written as said."""
    return " ".join("".join(w.word for w in s.words).strip() if getattr(s, "words", None) else s.text
                    for s in transcript.segments)


def two_party(engine, work: Path, refs: dict) -> dict:
    """Turn order, turn starts, DER and numbers said on the two-party calls; the time diarization takes."""
    rows = []
    for c in refs["two_party"]:
        stereo = np.load(work / f"two-party-{c['name']}.npy")
        call = calls.Call(c["name"], [calls.Turn(**t) for t in c["turns"]], stereo, c["references"], c["amounts"])
        for variant, samples in (("stereo", stereo), ("mono", call.mono),
                                 ("phone", np.load(work / f"two-party-{c['name']}-phone.npy"))):
            t = engine.transcribe(samples)
            order, start_error = calls.turn_order(call, t.turns())
            rows.append({"call": call.name, "variant": variant, "order": order, "start_error": start_error,
                         "der": calls.der(call, t.segments), "said": calls.said_exactly(call, t.text),
                         "said_raw": calls.said_exactly(call, raw_text(t))})
    return {"rows": rows, "timing": diarization_time(engine, np.load(work / "two-party-long.npy").sum(axis=0))}


def diarization_time(engine, mono: np.ndarray) -> dict:
    """Seconds the diarization of a two-party mono call takes: the engine alone, and the whole transcription
    with and without it (alternating, medians of 3)."""
    from channels import diarization

    on, off, alone = [], [], []
    options = engine.diarization
    for _ in range(3):
        for runs, speakers in ((on, options.speakers), (off, 1)):
            engine.diarization = diarization.Options(speakers, options.agent, options.business)
            started = time.perf_counter()
            transcript = engine.transcribe(mono)
            runs.append(time.perf_counter() - started)
        spans = diarization.speech_spans(transcript.segments)
        started = time.perf_counter()
        engine.diarizer.turns(mono, spans, options.speakers)
        alone.append(time.perf_counter() - started)
    engine.diarization = options
    return {"audio_s": mono.size / 16000, "on_s": float(np.median(on)), "off_s": float(np.median(off)),
            "diarizer_s": float(np.median(alone))}


def scores(refs: list[str], hyps: list[str]) -> dict:
    """WER after Whisper's English normaliser, and the error rate on number words alone."""
    import jiwer
    from whisper.normalizers import EnglishTextNormalizer

    norm = EnglishTextNormalizer()
    r = [norm(t) or "<empty>" for t in refs]
    h = [norm(t) for t in hyps]
    out = jiwer.process_words(r, h)
    numbers = hits = 0
    for ref_words, chunks in zip(out.references, out.alignments):
        is_number = [any(c.isdigit() for c in w) for w in ref_words]
        numbers += sum(is_number)
        for c in chunks:
            if c.type == "equal":
                hits += sum(is_number[c.ref_start_idx:c.ref_end_idx])
    return {"wer": out.wer, "words": sum(len(w) for w in out.references), "numbers": numbers,
            "number_error": (1 - hits / numbers) if numbers else 0.0}


def worker(config: dict) -> dict:
    """One engine and model, in its own process: every measurement for the table."""
    import warnings

    warnings.filterwarnings("ignore")
    from agent.settings import Settings
    from channels import asr
    from channels.audio import SAMPLE_RATE

    work = Path(config["work"])
    refs = json.loads((work / "refs.json").read_text())
    settings = Settings(asr_engine=config["engine"], asr_model=config["model"], asr_beam_size=config["beam_size"],
                        **({"cache_dir": config["cache_dir"]} if config.get("cache_dir") else {}))
    started = time.perf_counter()
    engine = asr.load_engine(settings)
    result = {"engine": engine.name, "model": config["model"], "device": getattr(engine, "device", ""),
              "compute_type": getattr(engine, "compute_type", ""), "load_s": time.perf_counter() - started}
    engine.transcribe(np.load(work / "clean-0.npy"))  # warm-up: first-call costs are not speed
    for variant in ("clean", "phone"):
        clips = [np.load(work / f"{variant}-{i}.npy") for i in range(len(refs[variant]))]
        started = time.perf_counter()
        transcripts = [engine.transcribe(c) for c in clips]
        seconds = time.perf_counter() - started
        hyps = [t.text for t in transcripts]
        result[variant] = {**scores(refs[variant], hyps), "seconds": seconds,
                           "raw_wer": scores(refs[variant], [raw_text(t) for t in transcripts])["wer"],
                           "rtf": seconds / (sum(c.size for c in clips) / SAMPLE_RATE),
                           "errors": [(r, h) for r, h in zip(refs[variant], hyps) if r != h][:5]}
    call = np.load(work / "call.npy")
    started = time.perf_counter()
    text = engine.transcribe(call).text
    result["call"] = {"seconds": time.perf_counter() - started, "audio_s": call.size / SAMPLE_RATE,
                      **scores([refs["call"]], [text])}
    if config["clips"]:
        clips = [np.load(work / f"clip-{i}.npy") for i in range(config["clips"])]
        engine.transcribe_many(clips[:3])  # warm-up of the packed path (word timestamps)
        started = time.perf_counter()
        single = [engine.transcribe(c).text for c in clips]
        single_s = time.perf_counter() - started
        started = time.perf_counter()
        packed = [t.text for t in engine.transcribe_many(clips)]
        packed_s = time.perf_counter() - started
        want = refs["clips"][:len(clips)]
        result["clips"] = {"n": len(clips), "single_s": single_s, "packed_s": packed_s,
                           "single": scores(want, single), "packed": scores(want, packed)}
    if config["two_party"]:
        result["two_party"] = two_party(engine, work, refs)
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def run_worker(config: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(config)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if proc.returncode != 0:
        raise SystemExit(f"{config['engine']} {config['model']} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.splitlines()[-1])


def report(results: list[dict], args) -> None:
    pct = lambda x: f"{100 * x:.1f}%"  # noqa: E731
    print(f"\nASR benchmark: {args.sentences} sentences, clean and telephone (8 kHz, {args.snr_db:g} dB SNR), "
          f"beam {args.beam_size}, "
          f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} at the end")
    print(f"{'model':<8}{'engine':<16}{'type':<9}{'clean WER':>10}{'numbers':>9}{'RTF':>7}"
          f"{'phone WER':>11}{'numbers':>9}{'RTF':>7}{'60 s call':>11}{'load':>7}{'peak MB':>9}")
    for r in results:
        c, p = r["clean"], r["phone"]
        print(f"{r['model']:<8}{r['engine']:<16}{r['compute_type']:<9}{pct(c['wer']):>10}{pct(c['number_error']):>9}"
              f"{c['rtf']:>7.3f}{pct(p['wer']):>11}{pct(p['number_error']):>9}{p['rtf']:>7.3f}"
              f"{r['call']['seconds']:>10.1f}s{r['load_s']:>6.1f}s{r['peak_mb']:>9.0f}")
    print("WER of Whisper's own words, before numbers are written as said: " + ", ".join(
        f"{r['model']}/{r['engine']} clean {pct(r['clean']['raw_wer'])} phone {pct(r['phone']['raw_wer'])}"
        for r in results))
    print(f"(numbers: share of {results[0]['clean']['numbers']} number words per variant not recognised exactly; "
          f"60 s call WER: " + ", ".join(f"{r['model']}/{r['engine']} {pct(r['call']['wer'])}" for r in results) + ")")
    by = {(r["model"], r["engine"]): r for r in results}
    for model in args.models:
        fw, ow = by.get((model, "faster-whisper")), by.get((model, "openai-whisper"))
        if fw and ow:
            print(f"{model}: faster-whisper is {ow['clean']['seconds'] / fw['clean']['seconds']:.1f}x faster than "
                  f"openai-whisper on the clean sentences, {ow['call']['seconds'] / fw['call']['seconds']:.1f}x on "
                  f"the 60 s call (beam {args.beam_size}, same audio, same weights)")
    report_two_party([r for r in results if "two_party" in r])
    rows = [r for r in results if "clips" in r]
    if rows:
        print(f"\n{'model':<8}{'engine':<16}{'clips':>6}{'one at a time':>15}{'packed':>10}{'speed-up':>10}"
              f"{'WER one':>9}{'WER packed':>11}")
        for r in rows:
            k = r["clips"]
            print(f"{r['model']:<8}{r['engine']:<16}{k['n']:>6}{k['n'] / k['single_s']:>11.1f}/s  "
                  f"{k['n'] / k['packed_s']:>6.1f}/s{k['single_s'] / k['packed_s']:>9.1f}x"
                  f"{pct(k['single']['wer']):>9}{pct(k['packed']['wer']):>11}")


def report_two_party(results: list[dict]) -> None:
    if not results:
        return
    print(f"\nTwo-party calls ({len(results[0]['two_party']['rows']) // 3} calls: agent espeak-ng, customer Piper; "
          "DER with a 0.25 s collar)")
    print(f"{'model':<8}{'engine':<16}{'variant':<8}{'order right':>12}{'worst start':>12}{'DER median':>11}"
          f"{'DER worst':>10}{'said right':>11}{'before':>8}")
    for r in results:
        for variant in ("stereo", "mono", "phone"):
            rows = [x for x in r["two_party"]["rows"] if x["variant"] == variant]
            said = [sum(x["said"][i] for x in rows) for i in (0, 1)]
            before = sum(x["said_raw"][0] for x in rows)
            print(f"{r['model']:<8}{r['engine']:<16}{variant:<8}{sum(x['order'] for x in rows):>7} of {len(rows):<2}"
                  f"{max(x['start_error'] for x in rows):>11.2f}s{100 * np.median([x['der'] for x in rows]):>10.1f}%"
                  f"{100 * max(x['der'] for x in rows):>9.1f}%{f'{said[0]} of {said[1]}':>11}{before:>8}")
        wrong = [f"{x['call']}/{x['variant']} (DER {100 * x['der']:.1f}%, order {'right' if x['order'] else 'wrong'})"
                 for x in r["two_party"]["rows"] if x["der"] > 0.05 or not x["order"]]
        if wrong:
            print("  over 5% DER or out of order: " + ", ".join(wrong))
        t = r["two_party"]["timing"]
        print(f"  {t['audio_s']:.0f} s two-party mono call: diarization engine {t['diarizer_s']:.2f} s "
              f"(RTF +{t['diarizer_s'] / t['audio_s']:.3f}); transcription {t['on_s']:.2f} s with diarization, "
              f"{t['off_s']:.2f} s without (RTF +{(t['on_s'] - t['off_s']) / t['audio_s']:.3f})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="tiny.en,base")
    p.add_argument("--engines", default="faster-whisper,openai-whisper")
    p.add_argument("--sentences", type=int, default=20)
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--clips", type=int, default=100, help="3-second clips for the throughput test (0: skip)")
    p.add_argument("--clip-engines", default="faster-whisper", help="engines that run the clip test")
    p.add_argument("--call-s", type=float, default=60.0)
    p.add_argument("--snr-db", type=float, default=20.0, help="noise level of the telephone variant")
    p.add_argument("--two-party-engines", default="faster-whisper,openai-whisper",
                   help="engines that run the two-party calls ('': none)")
    p.add_argument("--cache-dir", help="where converted/joined models are kept (default: setting 'cache_dir')")
    p.add_argument("--json", help="also write every figure to this file")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    args.models, args.engines = args.models.split(","), args.engines.split(",")
    args.sentences = min(args.sentences, len(SENTENCES))
    with tempfile.TemporaryDirectory(prefix="bench-asr-") as tmp:
        started = time.perf_counter()
        build(Path(tmp), args.sentences, args.clips, args.call_s, args.snr_db)
        print(f"test set built in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        results = []
        for model in args.models:
            for engine in args.engines:
                print(f"running {engine} {model} ...", file=sys.stderr)
                results.append(run_worker({"work": tmp, "engine": engine, "model": model,
                                           "beam_size": args.beam_size, "cache_dir": args.cache_dir,
                                           "clips": args.clips if engine in args.clip_engines.split(",") else 0,
                                           "two_party": engine in args.two_party_engines.split(",")}))
    report(results, args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
