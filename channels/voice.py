"""The phone channel: a call recording in, a spoken reply out."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from agent import logs
from agent.pipeline import Agent
from agent.types import Message, Reply

from . import asr, audio, tts

log = logs.get("voice")


@dataclass
class CallResult:
    transcript: asr.Transcript
    reply: Reply
    audio: Path
    timings: dict[str, float]

    def summary(self) -> dict:
        return {"transcript": self.transcript.text, "intent": self.reply.intent,
                "confidence": self.reply.confidence, "reply": self.reply.text, "audio": str(self.audio),
                "escalate": self.reply.escalate, "reason": self.reply.reason,
                "top": [vars(s) for s in self.reply.top], "entities": [vars(e) for e in self.reply.entities],
                "segments": [vars(s) for s in self.transcript.segments], "timings": self.timings}


class VoiceChannel:
    def __init__(self, agent: Agent):
        self.agent = agent

    @cached_property
    def recogniser(self):
        return asr.load_engine(self.agent.settings)

    @cached_property
    def speaker(self):
        return tts.load_engine(self.agent.settings)

    def warm_up(self) -> "VoiceChannel":
        """Load the recogniser, the voice and the agent's models now rather than on the first call."""
        _ = self.recogniser, self.speaker
        self.agent.warm_up()
        return self

    def transcribe(self, recording: str | Path) -> asr.Transcript:
        return self.recogniser.transcribe(audio.decode(recording))

    def speak(self, text: str, out: str | Path) -> Path:
        return audio.write_wav(out, self.speaker.synthesize(text), self.speaker.sample_rate)

    def answer(self, recording: str | Path, out: str | Path) -> CallResult:
        timings = {}
        with logs.Timer() as t:
            samples = audio.decode(recording)
        timings["decode"] = t.seconds
        self.warm_up()  # a bad recording fails above before any model loads; stage timings exclude loading
        with logs.Timer() as t:
            transcript = self.recogniser.transcribe(samples)
        timings["transcribe"] = t.seconds
        with logs.Timer() as t:
            reply = self.agent.handle(Message(text=transcript.text, channel="call"))
        timings["understand_and_draft"] = t.seconds
        with logs.Timer() as t:
            path = self.speak(reply.text, out)
        timings["speak"] = t.seconds
        logs.event(log, "call", duration_s=transcript.duration_s, intent=reply.intent, escalate=reply.escalate,
                   **{f"{k}_s": v for k, v in timings.items()})
        return CallResult(transcript, reply, path, timings)
