"""One settings object for every choice of model, engine and device.

Precedence, lowest first: the defaults below, a TOML file, environment variables
(``SUPPORT_AGENT_<FIELD>`` in upper case), then command-line flags. The file is
``$SUPPORT_AGENT_CONFIG`` if set, else ``./support-agent.toml`` if present, else
``~/.config/support-agent/config.toml`` if present.
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from .types import AgentError

ENV_PREFIX = "SUPPORT_AGENT_"


@dataclass
class Settings:
    # Speech recognition
    asr_engine: str = "auto"  # auto (faster-whisper where it can use the device), faster-whisper, openai-whisper
    asr_model: str = "base"  # "base" and "tiny.en" ship as packages; any Whisper size, HF id or path
    asr_device: str = "auto"  # auto, cpu, cuda
    asr_compute_type: str = "auto"  # auto: int8 on CPU, float16 on CUDA
    asr_beam_size: int = 5
    asr_speakers: str = "customer,agent"  # who is on each channel of a stereo recording, left first
    # Mono calls: who spoke when (channels/diarization.py)
    diarization_engine: str = "resemblyzer"  # resemblyzer (packaged encoder) or pyannote (model-hub access)
    diarization_model: str = ""  # pyannote: a pipeline id on the hub or a local copy ("" is its default)
    diarization_speakers: int = 2  # speakers on a mono call; 1 turns diarization off
    diarization_agent: str = "greeting"  # who is the agent: the one who greets with the business's name, or "first"
    language: str = "en"
    # Understanding
    encoder_model: str = "all-MiniLM-L6-v2"  # packaged; any HF encoder id or path
    intent_model: str = "default"  # "default" is the artefact shipped in agent/data/intent
    encoder_runtime: str = "onnx"  # onnx (exported once into cache_dir) or torch
    encoder_workers: int = 0  # batches embedded at once by the onnx runtime, one core each (0: one per core)
    # Drafting
    knowledge_base: str = "default"  # "default" is agent/data/knowledge/bank.yaml
    drafter: str = "composer"  # composer (grounded template) or generator (fine-tuned, guarded)
    generator_model: str = "default"  # "default" is the artefact shipped in agent/data/generator
    # Speech out
    tts_engine: str = "piper"
    tts_voice: str = "en_US-joe-medium"  # packaged; or a path to a Piper .onnx voice; coqui: MODEL[:SPEAKER]
    tts_speaker_wav: str = ""  # coqui: a reference recording whose voice a cloning model (XTTS v2) speaks in
    tts_language: str = ""  # coqui: a multilingual model's language ("": the setting 'language', else en)
    # Email
    from_address: str = "Kestrel Bank Support <support@kestrel.example>"
    own_addresses: str = ""  # the mailbox's other addresses, comma-separated: mail from them is a loop, never answered
    outbox: str = "outbox"
    # IMAP (support-agent email --imap). The password is read from SUPPORT_AGENT_IMAP_PASSWORD or a settings
    # file that only its owner can read, never from the command line; repr=False keeps it out of any printout.
    imap_password: str = field(default="", repr=False)
    imap_poll_s: float = 3.0  # how often a watched folder is checked where the server has no IDLE
    imap_timeout_s: float = 60.0  # a server silent this long (outside IDLE) counts as a dropped connection
    # Learning loop
    records_file: str = ""  # JSONL where every handled message is logged, PII masked ("" = off)
    feedback_file: str = "feedback.jsonl"  # JSONL where the demo appends human corrections
    models_dir: str = str(Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
                          / "support-agent" / "models")  # trained versions and the promoted one
    # Serving the demo to a team
    users_file: str = ""  # who may log in (support-agent users add NAME); "" = no logins, loopback only
    audit_file: str = "audit.jsonl"  # JSONL of who did what in the demo: user, time, action, outcome
    queue_size: int = 16  # requests that may wait for each of the demo's queues; more are told it is busy
    user_requests: int = 4  # requests one user may have waiting or running in the demo at once
    request_timeout_s: float = 600.0  # from arrival to answer, waiting included, for every demo request
    # Housekeeping
    # torch CPU threads for the agent's torch models (0: torch's default, one per core). One message is
    # a batch of one short text, where extra threads only add synchronisation: on this 2-core machine
    # under load, one thread classified a message in 162 ms and two in 817 ms (median).
    torch_threads: int = 1
    cache_dir: str = str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "support-agent")
    log_level: str = "WARNING"

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ) if env is None else env
        values: dict[str, object] = {}
        config = config_path(path, env)
        if config is not None:
            values.update(_read_toml(config))
        for f in fields(cls):
            key = ENV_PREFIX + f.name.upper()
            if key in env:
                values[f.name] = env[key]
        return cls().replace(**values)

    def replace(self, **changes: object) -> "Settings":
        """A copy with ``changes`` applied (None values are ignored), each checked and typed."""
        known = {f.name: f for f in fields(self)}
        typed = {}
        for name, value in changes.items():
            if value is None:
                continue
            if name not in known:
                raise AgentError(f"unknown setting '{name}' (known: {', '.join(sorted(known))})")
            typed[name] = _coerce(name, value, type(getattr(self, name)))
        return dataclasses.replace(self, **typed)


def overrides(items: list[str]) -> dict[str, str]:
    """``--set KEY=VALUE`` items as a dict."""
    pairs = dict(item.split("=", 1) for item in items if "=" in item)
    if len(pairs) != len(items):
        raise AgentError("--set takes KEY=VALUE")
    return pairs


def config_path(path: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> Path | None:
    """The settings file that ``Settings.load(path, env)`` reads, or None."""
    env = dict(os.environ) if env is None else env
    if path is not None or env.get("SUPPORT_AGENT_CONFIG"):
        explicit = Path(path if path is not None else env["SUPPORT_AGENT_CONFIG"])
        if not explicit.is_file():
            raise AgentError(f"settings file not found: {explicit}")
        return explicit
    for candidate in (Path("support-agent.toml"), Path.home() / ".config" / "support-agent" / "config.toml"):
        if candidate.is_file():
            return candidate
    return None


def _read_toml(path: Path) -> dict[str, object]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AgentError(f"settings file {path} is not valid TOML: {exc}") from None
    # Accept both a flat file and one with a [support-agent] table.
    return dict(data.get("support-agent", data))


def _coerce(name: str, value: object, kind: type) -> object:
    if isinstance(value, kind):
        return value
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise AgentError(f"setting '{name}' must be {kind.__name__}, got {value!r}") from None
