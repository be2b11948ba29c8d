"""What runs inside Ray for ``support-agent batch``: the CPU task that prepares a unit of work (short
clips decoded, emails parsed) and the worker that loads its models once and turns units into rows,
with the single-item commands' own functions (``channels/rows.py``).

A worker on CPUs runs on cores of its own (``hold_cores``): Whisper (CTranslate2) starts a thread per
core it may use, so two workers that each saw the whole machine would fight over every core.
"""
from __future__ import annotations

import fcntl
import json
import os
import pickle
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from agent import logs
from agent.settings import Settings
from agent.types import AgentError, Message, first_line

from . import rows
from .archive import Item

log = logs.get("batch")
NO_TEXT = "no text in this message"


@dataclass
class Unit:
    """Items that go through a worker together: one group of recordings (``rows.groups``), one call, or
    a run of messages. ``prepared`` is filled by ``prepare``."""

    items: list[Item]
    short: list[bool] = field(default_factory=list)  # transcribe: which recordings are short clips
    prepared: list = field(default_factory=list)


def prepare(batch: dict, command: str, channel: str) -> dict:
    """Ray Data CPU task: decode a group's short clips, or parse each message (an email as the email
    channel reads it); what cannot be read is kept as the reason, for its row."""
    out = []
    for blob in batch["unit"]:
        unit = pickle.loads(blob)
        if command == "transcribe":
            unit.prepared = [rows.prepare(item.path, short) for item, short in zip(unit.items, unit.short)]
        else:
            unit.prepared = [_message(item, channel) for item in unit.items]
        out.append(pickle.dumps(unit))
    return {"unit": out}


def _message(item: Item, channel: str) -> Message | str:
    if item.error is not None:
        return item.error
    if not item.text.strip():
        return NO_TEXT
    try:
        return rows.message_for(item.text, channel)
    except AgentError as exc:
        return str(exc)


class Worker:
    """One member of the actor pool: models loaded once, then a unit per call, a row per item. No item
    raises: a failure is that item's ``error``."""

    def __init__(self, command: str, settings: Settings, cpus: int, gpus: float, speakers: tuple[str, ...],
                 replies: str | None):
        from agent.pipeline import Agent

        if not gpus:
            self.cores = hold_cores(cpus)
        logs.configure(settings.log_level)
        self.command, self.speakers, self.replies = command, speakers, replies
        if command == "transcribe":
            from . import asr

            self.engine = asr.load_engine(settings)
        elif command == "call":
            from .voice import VoiceChannel

            self.voice = VoiceChannel(Agent(settings))
            if replies:
                self.voice.warm_up()
            else:  # no spoken replies: the voice is not needed
                _ = self.voice.recogniser
                self.voice.agent.warm_up()
        else:
            self.agent = Agent(settings).warm_up()

    def __call__(self, batch: dict) -> dict:
        out = []
        for blob in batch["unit"]:
            unit = pickle.loads(blob)
            out += [json.dumps(row, ensure_ascii=False) for row in self.rows(unit)]
        return {"row": out}

    def rows(self, unit: Unit) -> list[dict]:
        if self.command == "transcribe":
            found = _guarded(lambda: rows.transcribe_group(self.engine, unit.prepared, self.speakers),
                             len(unit.items))
            return [self._row(item, r) for item, r in zip(unit.items, found)]
        if self.command == "call":
            return [self._row(item, _guarded(lambda item=item: [self._call(item)], 1)[0]) for item in unit.items]
        make = (lambda m: rows.classify_row(self.agent, m.text)) if self.command == "classify" \
            else (lambda m: rows.reply_row(self.agent, m))
        return [self._row(item, {"error": m} if isinstance(m, str) else _guarded(lambda m=m: [make(m)], 1)[0])
                for item, m in zip(unit.items, unit.prepared)]

    def _call(self, item: Item) -> dict:
        out = str(Path(self.replies) / f"{item.key}.wav") if self.replies else None
        return rows.call_row(self.voice, item.path, out)

    def _row(self, item: Item, fields: dict) -> dict:
        """The item's ``source``, ``key`` and ``error``, then the command's fields; one of those named like
        the first three (reply's ``source``: which drafter wrote it) gets the command's name in front."""
        fields = dict(fields)
        error = fields.pop("error", None)
        ours = {"source": item.source, "key": item.key, "error": error}
        return {**ours, **{f"{self.command}_{k}" if k in ours else k: v for k, v in fields.items()}}


def _guarded(work, n: int) -> list[dict]:
    """``work()``, or ``n`` error rows naming what went wrong: one bad item never stops the run."""
    try:
        return work()
    except AgentError as exc:
        return [{"error": str(exc)}] * n
    except Exception as exc:  # a bug, not bad input: logged with where it happened, and the run goes on
        logs.event(log, "internal_error", error=type(exc).__name__, where=traceback.format_exc(limit=-1).strip())
        first = first_line(exc)
        return [{"error": f"internal error: {type(exc).__name__}: {first}"}] * n


def hold_cores(n: int) -> list[int]:
    """Run this process on ``n`` cores no other worker on this machine holds, and return them; none (the
    whole machine, as before) when fewer are free. A core is held by a lock on a file named after it,
    which the system releases when the process ends, however it ends."""
    folder = Path(tempfile.gettempdir()) / "support-agent-cores"
    folder.mkdir(exist_ok=True)
    held = []
    for core in sorted(os.sched_getaffinity(0)):
        lock = open(folder / f"{core}.lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        held.append((core, lock))
        if len(held) == n:
            os.sched_setaffinity(0, [core for core, _ in held])
            _HELD.extend(lock for _, lock in held)
            return [core for core, _ in held]
    for _, lock in held:
        lock.close()
    return []


_HELD: list = []  # the lock files of this process's cores, open for as long as it lives
