"""Listening test: which spoken form of an amount Whisper base hears back best, clean and over a phone line.

    python bench/amount_forms.py [--forms minor,and_minor,comma_minor,point] [--snr-db 20] [--json FILE]

Each form is one way of saying an amount with a minor part, for every currency the entity detector
knows (``channels.speech_text.MONEY``):

    minor        "forty-two euros ninety"              (what people say in a shop)
    and_minor    "forty-two euros and ninety cents"
    comma_minor  "forty-two euros, ninety cents"
    point        "forty-two point nine zero euros"

The packaged Piper voice (deterministic) says each amount in three sentences; the default recogniser
(faster-whisper, Whisper base) transcribes it clean and as a telephone recording (bench/asr.py's
``telephone``: 300-3400 Hz, 8 kHz mu-law, white noise at ``--snr-db``). Both sides are put in spoken form
with the same form, so "€42.90" written back counts as right. Reported per form: the share of amounts
heard back exactly (and per currency, of three), and the sentences' WER.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SENTENCES = ["Your refund of {} was sent today.", "We have charged {} to your account.",
             "The fee of {} will be returned within five days."]
AMOUNTS = ["42.90", "1,250.75", "3.05", "19.99", "7.10", "260.40"]


def spoken_forms():
    """Form name -> (pounds, pence, one, many, minor_one, minor_many) -> the amount in words."""
    from channels.speech_text import DIGITS, say_number

    def unit(n, one, many):
        return one if n == 1 else many

    return {
        "minor": lambda p, c, o, m, mo, mm: f"{say_number(p)} {unit(p, o, m)} {say_number(c)}",
        "and_minor": lambda p, c, o, m, mo, mm: f"{say_number(p)} {unit(p, o, m)} and {say_number(c)} {unit(c, mo, mm)}",
        "comma_minor": lambda p, c, o, m, mo, mm: f"{say_number(p)} {unit(p, o, m)}, {say_number(c)} {unit(c, mo, mm)}",
        "point": lambda p, c, o, m, mo, mm: f"{say_number(p)} point {DIGITS[c // 10]} {DIGITS[c % 10]} {m}",
    }


def use_form(form, original) -> None:
    """Make ``speech_text`` say amounts with a minor part in ``form``; whole amounts and pence alone are said
    by ``original`` (the shipped ``say_amount``)."""
    from channels import speech_text

    def say_amount(value: str) -> str:
        code = speech_text.CURRENCY_SYMBOLS.get(value[:1])
        number = value[1:] if code else value.split()[0]
        code = code or value.split()[-1]
        pounds, pence = divmod(round(float(number.replace(",", "")) * 100), 100)
        return form(pounds, pence, *speech_text.MONEY[code]) if pounds and pence else original(value)
    speech_text.say_amount = say_amount


def written(amount: str, code: str) -> str:
    from agent.entities import SYMBOL_FOR

    return f"{SYMBOL_FOR[code]}{amount}" if code in SYMBOL_FOR else f"{amount} {code}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--forms", default="minor,and_minor,comma_minor,point")
    p.add_argument("--snr-db", type=float, default=20.0)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()

    import jiwer

    from agent.settings import Settings
    from asr import telephone
    from channels import asr, audio, speech_text
    from channels.tts import PiperEngine

    settings = Settings()
    piper, recogniser = PiperEngine(settings, deterministic=True), asr.load_engine(settings)
    rng, work = np.random.default_rng(0), Path(tempfile.mkdtemp(prefix="amount-forms-"))
    texts = [(SENTENCES[i % 3].format(written(AMOUNTS[(i + j) % len(AMOUNTS)], code)), code)
             for i, code in enumerate(speech_text.MONEY) for j in range(3) if code != "JPY"]
    forms, original = spoken_forms(), speech_text.say_amount
    results = []
    for name in args.forms.split(","):
        use_form(forms[name], original)
        scores = {}
        for condition in ("clean", "telephone"):
            refs, hyps, right, by_currency = [], [], 0, {}
            for k, (text, code) in enumerate(texts):
                spoken = audio.resample(piper.synthesize(text), piper.sample_rate, audio.SAMPLE_RATE)
                if condition == "telephone":
                    spoken = telephone(spoken, rng, work, f"{name}-{k}", args.snr_db)
                heard = recogniser.transcribe(spoken).text
                ref, hyp = (" ".join(re.sub(r"[^a-z0-9' ]+", " ", speech_text.prepare(t).lower()).split())
                            for t in (text, heard))
                amount = [e for e in speech_text.extract(text) if e.kind == "amount"][0]
                key = " ".join(re.sub(r"[^a-z0-9' ]+", " ", speech_text.say_amount(amount.value).lower()).split())
                right += key in hyp
                by_currency[code] = by_currency.get(code, 0) + (key in hyp)
                refs.append(ref)
                hyps.append(hyp)
            scores[condition] = {"amounts_right": round(right / len(texts), 3), "wer": round(jiwer.wer(refs, hyps), 4),
                                 "right_by_currency": by_currency,
                                 "misheard": [h for r, h in zip(refs, hyps) if r != h][:6]}
        result = {"form": name, "example": speech_text.prepare("€42.90"), "amounts": len(texts), **scores}
        print(json.dumps(result), flush=True)
        results.append(result)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
