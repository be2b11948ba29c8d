"""The phone channel: a call recording in, a spoken reply out."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property
from itertools import chain
from pathlib import Path

from agent import logs
from agent.pipeline import Agent
from agent.types import Message, Reply

from . import asr, audio, tts

log = logs.get("voice")


@dataclass
class CallResult:
    transcript: asr.Transcript
    customer_text: str  # what the agent answered: the customer's words only, on a two-party call
    reply: Reply
    audio: Path | None  # the spoken reply, once spoken
    timings: dict[str, float]

    def summary(self) -> dict:
        return {"transcript": self.transcript.text, "customer_text": self.customer_text, "intent": self.reply.intent,
                "confidence": self.reply.confidence, "reply": self.reply.text, "audio": str(self.audio),
                "escalate": self.reply.escalate, "reason": self.reply.reason, "evidence": self.reply.evidence,
                "intents": self.reply.intents, "top": [vars(s) for s in self.reply.top], "entities": [vars(e) for e in self.reply.entities],
                "sentiment": self.reply.sentiment, "segments": [asdict(s) for s in self.transcript.segments],
                "turns": self.transcript.turns(), "timings": self.timings}


class VoiceChannel:
    def __init__(self, agent: Agent):
        self.agent = agent
        # Who is on each channel of a two-party stereo recording, left first (setting ``asr_speakers``); a
        # diarized mono call uses the same labels.
        self.speakers = tuple(s.strip() for s in agent.settings.asr_speakers.split(",") if s.strip()) \
            or asr.DEFAULT_SPEAKERS
        # The agent answers the party named "customer"; a team that names its parties otherwise lists the
        # caller first.
        self.customer = "customer" if "customer" in self.speakers else self.speakers[0]

    @cached_property
    def recogniser(self):
        return asr.load_engine(self.agent.settings)

    @cached_property
    def speaker(self):
        return tts.load_engine(self.agent.settings)

    def warm_up(self) -> "VoiceChannel":
        """Load the recogniser (and its diarization engine), the voice and the agent's models now rather than
        on the first call."""
        _ = self.recogniser, self.speaker
        if self.recogniser.diarization.speakers > 1:
            _ = self.recogniser.diarizer
        self.agent.warm_up()
        return self

    def speak(self, text: str, out: str | Path) -> Path:
        """The reply as a loudness-normalised WAV at the voice's rate (``tts.export``)."""
        return tts.export(out, self.speaker.synthesize(text), self.speaker.sample_rate)[0]

    def customer_words(self, transcript: asr.Transcript) -> str:
        """The customer's segments on a two-party call (stereo, or mono and diarized); everything said where
        the recording holds one voice."""
        if all(s.speaker is None for s in transcript.segments):
            return transcript.text
        return " ".join(s.text for s in transcript.segments if s.speaker == self.customer)

    def understand(self, recording: str | Path) -> CallResult:
        """Transcribe the call and draft the reply; the result has no audio until ``speak_reply``."""
        timings = {}
        # Decoded block by block, channels apart, as ``recogniser.transcribe_file`` does; the first block
        # is taken here so that a bad recording fails before any model loads.
        blocks = audio.stream(recording, split_channels=True, block_s=asr.BLOCK_S)
        with logs.Timer() as t:
            first = next(blocks)
        timings["decode"] = t.seconds
        self.warm_up()  # stage timings exclude loading
        with logs.Timer() as t:
            transcript = self.recogniser.transcribe_blocks(chain([first], blocks), self.speakers)
        timings["transcribe"] = t.seconds
        text = self.customer_words(transcript)
        with logs.Timer() as t:
            reply = self.agent.handle(Message(text=text, channel="call"))
        timings["understand_and_draft"] = t.seconds
        return CallResult(transcript, text, reply, None, timings)

    def speak_reply(self, result: CallResult, out: str | Path) -> CallResult:
        with logs.Timer() as t:
            result.audio = self.speak(result.reply.text, out)
        result.timings["speak"] = t.seconds
        logs.event(log, "call", duration_s=result.transcript.duration_s, intent=result.reply.intent,
                   escalate=result.reply.escalate, speakers=len({s.speaker for s in result.transcript.segments}),
                   **{f"{k}_s": v for k, v in result.timings.items()})
        return result

    def answer(self, recording: str | Path, out: str | Path) -> CallResult:
        return self.speak_reply(self.understand(recording), out)
