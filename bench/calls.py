"""Two-party test calls with known turn times, for the tests and ``bench/asr.py``.

Two distinct voices: the packaged Piper voice (en_US-joe-medium, a US man) and Debian's ``espeak-ng``
(a British woman's variant; ``scripts/setup.sh`` installs it). Both speak text prepared as the agent's
own replies are (``channels.speech_text``: "48213" is said digit by digit, "£42.50" as "forty-two pounds
fifty"). Each turn is placed on the call's timeline after a pause; its reference start and end are where
its audio is above -40 dBFS, so the reference bounds the speech, not the synthesiser's silence. A call is
written as stereo (one party per channel, customer left) and mixed to mono.
"""
from __future__ import annotations

import io
import re
import shutil
import subprocess
import wave
from dataclasses import dataclass, field

import numpy as np

from agent.types import AgentError
from channels import audio, speech_text

ESPEAK_VOICE, ESPEAK_WPM = "en-gb+f3", 150
AUDIBLE = 0.01  # -40 dBFS: where a turn's reference starts and ends


@dataclass
class Turn:
    speaker: str  # "agent" or "customer"
    text: str  # as written; the voice says it as speech_text prepares it
    start: float = 0.0  # seconds, where the speech is audible
    end: float = 0.0


@dataclass
class Call:
    name: str
    turns: list[Turn]
    stereo: np.ndarray  # (2, n) at 16 kHz: customer left, agent right
    references: list[str] = field(default_factory=list)  # codes said digit by digit in the call
    amounts: list[str] = field(default_factory=list)  # amounts said in words, as agent.entities writes them

    @property
    def mono(self) -> np.ndarray:
        return self.stereo.sum(axis=0).astype(np.float32)

    @property
    def duration_s(self) -> float:
        return self.stereo.shape[1] / audio.SAMPLE_RATE


def espeak(text: str, voice: str = ESPEAK_VOICE, wpm: int = ESPEAK_WPM) -> np.ndarray:
    """``text`` said by espeak-ng, as 16 kHz float32."""
    if shutil.which("espeak-ng") is None:
        raise AgentError("espeak-ng is not installed (scripts/setup.sh installs it: apt-get install espeak-ng)")
    said = " ".join(speech_text.sentences(text))
    out = subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "--stdout", said], capture_output=True,
                         check=True).stdout
    with wave.open(io.BytesIO(out)) as w:
        rate, pcm = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), "<i2")
    return audio.resample(pcm.astype(np.float32) / 32768, rate, audio.SAMPLE_RATE)


def piper_voice(piper):
    """The packaged Piper voice as a ``text -> 16 kHz samples`` function."""
    return lambda text: audio.resample(piper.synthesize(text), piper.sample_rate, audio.SAMPLE_RATE)


def audible(samples: np.ndarray) -> tuple[int, int]:
    """First and last sample above -40 dBFS (the whole clip if none is)."""
    loud = np.flatnonzero(np.abs(samples) > AUDIBLE)
    return (int(loud[0]), int(loud[-1]) + 1) if loud.size else (0, samples.size)


def build(name: str, script: list[tuple[str, str]], voices: dict, pauses: list[float] | float = 0.6,
          lead_s: float = 0.3, tail_s: float = 0.5, references=(), amounts=()) -> Call:
    """``script`` is ``[(speaker, text)]``; ``voices`` maps a speaker to a ``text -> samples`` function.

    Each turn's audible speech starts ``pauses[i]`` seconds after the previous turn's ended."""
    rate = audio.SAMPLE_RATE
    pauses = [pauses] * len(script) if isinstance(pauses, (int, float)) else pauses
    pieces, turns, t = [], [], lead_s
    for (speaker, text), pause in zip(script, pauses):
        samples = voices[speaker](text)
        a, b = audible(samples)
        samples = samples[a:b]
        start = t if not turns else turns[-1].end + pause
        turns.append(Turn(speaker, text, round(start, 3), round(start + samples.size / rate, 3)))
        pieces.append((speaker, int(round(start * rate)), samples))
        t = turns[-1].end
    stereo = np.zeros((2, int((t + tail_s) * rate) + 1), np.float32)
    for speaker, at, samples in pieces:
        stereo[0 if speaker == "customer" else 1, at:at + samples.size] += samples
    return Call(name, turns, stereo, list(references), list(amounts))


def write_stereo(path, stereo: np.ndarray, rate: int = audio.SAMPLE_RATE):
    """(2, n) float samples as a 16-bit stereo WAV."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(stereo, -1, 1) * 32767).astype("<i2").T.tobytes())
    return path


# Test calls: the agent (espeak-ng) and the customer (Piper), with references and amounts said in words.
SCRIPTS = {
    "card": ([("agent", "Thank you for calling Kestrel Bank, my name is Sarah, how can I help?"),
              ("customer", "Hi, I ordered a new card two weeks ago and it still has not arrived."),
              ("agent", "I am sorry about that. Can you give me the order number please?"),
              ("customer", "Yes, the order number is 48213.")],
             ["48213"], []),
    "refund": ([("agent", "Kestrel Bank, good morning, you are speaking to James."),
                ("customer", "Hello, I returned a jacket but my refund of £42.50 has not come through."),
                ("agent", "Let me look into that. What is the reference on your receipt?"),
                ("customer", "It is 7 3 0 9 1 6."),
                ("agent", "Thank you, I can see the refund, it should arrive within five working days.")],
               ["730916"], ["£42.50"]),
    "charged_twice": ([("customer", "Hello? I think I was charged twice for the same payment."),
                       ("agent", "Thank you for calling Kestrel Bank. I can help with that. Which card was it?"),
                       ("customer", "The card ending 5521, it was £19.99 at a supermarket on Monday."),
                       ("agent", "I see two payments of £19.99. One of them is still pending and will drop off.")],
                      ["5521"], ["£19.99"]),
    "transfer": ([("agent", "Welcome to Kestrel Bank, this is Priya speaking."),
                  ("customer", "My transfer of £250 to my landlord has been pending since yesterday."),
                  ("agent", "I can check that for you. Do you have the payment reference?"),
                  ("customer", "Yes, it is 9 1 5 4 0 2 7."),
                  ("agent", "Thanks. The transfer has cleared and will reach your landlord today."),
                  ("customer", "Great, and the fee was £1.20, is that right?")],
                 ["9154027"], ["£250", "£1.20"]),
    "direct_debit": ([("agent", "Good afternoon, Kestrel Bank, how may I help you today?"),
                      ("customer", "A direct debit of £60 was taken twice this month."),
                      ("agent", "I am sorry to hear that. Could you read me the reference on your statement?"),
                      ("customer", "It is 3 8 8 2 0 4."),
                      ("agent", "Thank you. I have raised a claim, and the £60 will be back in three days.")],
                     ["388204"], ["£60"]),
    "lost_card": ([("agent", "Thank you for calling Kestrel Bank, you are through to Tom."),
                   ("customer", "I lost my wallet on the bus and my card was in it."),
                   ("agent", "I will freeze the card now. What are the last four digits?"),
                   ("customer", "It ends 6 0 4 8."),
                   ("agent", "Done, the card ending 6048 is frozen and a new one is on its way.")],
                  ["6048"], []),
}


def _pauses(n: int) -> list[float]:
    return [0.0] + [0.5 + 0.1 * (i % 4) for i in range(1, n)]  # 0.5 to 0.8 s between turns


def test_calls(piper, names=None) -> list[Call]:
    """The scripted calls (all, or ``names``), spoken: the agent by espeak-ng, the customer by Piper."""
    voices = {"agent": espeak, "customer": piper_voice(piper)}
    return [build(name, script, voices, pauses=_pauses(len(script)), references=refs, amounts=amounts)
            for name, (script, refs, amounts) in SCRIPTS.items() if names is None or name in names]


def long_call(piper, seconds: float = 60.0) -> Call:
    """One call of about ``seconds``: the scripts' turns one after another, as long as they fit."""
    script, refs, amounts, said = [], [], [], 0.0
    for turns, r, a in SCRIPTS.values():
        for speaker, text in turns:
            said += 0.065 * len(text) + 0.65  # about what a turn and its pause take
            if said > seconds - 1:
                break
            script.append((speaker, text))
        else:
            refs, amounts = refs + r, amounts + a
    call = build("long", script, {"agent": espeak, "customer": piper_voice(piper)}, pauses=_pauses(len(script)))
    call.stereo = np.pad(call.stereo, ((0, 0), (0, max(int(seconds * audio.SAMPLE_RATE) - call.stereo.shape[1], 0))))
    call.references = [r for r in refs if any(r in t.text.replace(" ", "") for t in call.turns)]
    call.amounts = amounts
    return call


# Scoring a transcript of a call against its script ---------------------------------------------------------

def der(call: Call, segments) -> float:
    """Diarization error rate of ``segments`` (start, end, speaker) with a 0.25 s collar, as pyannote.metrics
    computes it (a segment with no speaker counts as a speaker of its own)."""
    from pyannote.core import Annotation
    from pyannote.core import Segment as Span
    from pyannote.metrics.diarization import DiarizationErrorRate

    reference, hypothesis = Annotation(), Annotation()
    for t in call.turns:
        reference[Span(t.start, t.end)] = t.speaker
    for s in segments:
        hypothesis[Span(s.start, s.end)] = s.speaker or "nobody"
    return float(DiarizationErrorRate(collar=0.25)(reference, hypothesis, uem=_extent(call)))


def _extent(call: Call):
    from pyannote.core import Segment as Span
    from pyannote.core import Timeline

    return Timeline([Span(0.0, call.duration_s)])


def turn_order(call: Call, turns: list[dict]) -> tuple[bool, float]:
    """Whether the speakers' turns come in the script's order, and the largest error of a turn's start."""
    right = [t["speaker"] for t in turns] == [t.speaker for t in call.turns]
    return right, max((abs(a["start"] - b.start) for a, b in zip(turns, call.turns)), default=float("inf"))


def said_exactly(call: Call, text: str) -> tuple[int, int]:
    """How many of the call's references (as digits) and amounts (as agent.entities reads them) ``text``
    holds exactly, and how many there are."""
    from agent.entities import extract

    amounts = [e.value for e in extract(text) if e.kind == "amount"]
    found = sum(bool(re.search(rf"(?<![\d-]){r}(?![\d-])", text)) for r in call.references)
    found += sum(a in amounts for a in call.amounts)
    return found, len(call.references) + len(call.amounts)
