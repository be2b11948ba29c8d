"""``support-agent batch``: an archive of recordings or messages through ``transcribe``, ``call``,
``classify`` or ``reply`` on Ray Data, on a Ray instance of this machine or on a Ray cluster.

The driver lists the items and hashes their content (``archive``), leaves out what an earlier run of
the same output folder wrote (``--resume``) and cuts the rest into units of work: groups of recordings
as ``support-agent transcribe`` recognises them together, one call, or a run of messages. Ray Data
prepares each unit in a CPU task (short clips decoded, emails parsed), hands it to a pool of workers
that load their models once (``batch_worker.Worker``; one GPU share each with ``--gpus-per-worker``)
and streams the rows back; the driver writes them in whole parts (``results``). Ray restarts a worker
that dies and gives its unit to the restarted one. The rows are the dicts the single-item commands
print (``rows``), with the item's ``source``, its content ``key`` and ``error``.
"""
from __future__ import annotations

import logging
import os
import pickle
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from agent.settings import Settings
from agent.types import AgentError

from . import archive, asr, audio, rows
from .batch_worker import Unit, Worker, prepare
from .results import Results

COMMANDS = ("transcribe", "call", "classify", "reply")
MESSAGES_PER_UNIT = 32  # messages take milliseconds each: a unit of one would be mostly Ray's overhead
MAX_BLOCKS = 2000  # units are spread over at most this many Ray Data blocks


@dataclass
class BatchOptions:
    command: str
    inputs: list[str]
    out: str
    address: str | None = None  # None: a Ray instance of this machine; "auto", "HOST:PORT" or "ray://HOST:PORT"
    workers: int = 0  # 0: as many as the cores (or GPUs) allow
    cpus_per_worker: int = 1
    gpus_per_worker: float = 0.0
    resume: bool = False
    jsonl: str | None = None  # also write the rows as JSON lines here
    speakers: tuple[str, ...] = asr.DEFAULT_SPEAKERS  # transcribe: the parties of a stereo call
    pack: bool = True  # transcribe: short clips share Whisper windows
    channel: str = "text"  # reply: how replies are framed
    speak: str | None = None  # call: speak each reply into this folder, as KEY.wav


def run(options: BatchOptions, settings: Settings) -> dict:
    """Every item's row in OUT/results.parquet; returns the summary."""
    started = time.perf_counter()
    _check(options)
    items = archive.recordings(options.inputs) if options.command in ("transcribe", "call") \
        else archive.messages(options.inputs)
    items = list({(item.source, item.key): item for item in items}.values())  # an input named twice is one item
    if not items:
        raise AgentError("the inputs hold no items")
    results = Results(options.out, options.resume)
    durations = _durations(items) if options.command in ("transcribe", "call") else {}
    units = plan(options, items, results.done, durations)
    todo = sum(len(u.items) for u in units)
    failures = seconds_of_audio = 0.0
    if units:
        for batch in _rows(options, settings, units):
            results.add(batch)
            failures += sum(row["error"] is not None for row in batch)
            seconds_of_audio += sum(durations.get(row["source"], (None, 1))[0] or 0.0 for row in batch)
    path = results.finish({item.source: item.key for item in items}, options.jsonl)
    seconds = time.perf_counter() - started
    return {"command": options.command, "items": len(items), "processed": todo, "already_done": len(items) - todo,
            "failures": int(failures), "seconds": round(seconds, 2), "items_per_s": round(todo / seconds, 3),
            "audio_hours_per_s": round(seconds_of_audio / 3600 / seconds, 6), "results": str(path),
            **({"jsonl": options.jsonl} if options.jsonl else {})}


def summary_line(summary: dict) -> str:
    return (f"batch {summary['command']}: {summary['items']} items, {summary['processed']} processed "
            f"({summary['already_done']} already done), {summary['failures']} failed; "
            f"{summary['items_per_s']:.2f} items/s, {summary['audio_hours_per_s']:.5f} audio hours/s, "
            f"{summary['seconds']:.1f} s; {summary['results']}")


def plan(options: BatchOptions, items: list[archive.Item], done: set, durations: dict) -> list[Unit]:
    """Units of the items not yet done. Recordings are grouped over the whole list, as
    ``support-agent transcribe`` would group it, before the finished ones are left out, so a resumed run
    gives the transcripts a whole one would."""
    if options.command == "transcribe":
        units = []
        for group in rows.groups((item, rows.packable(*durations[item.source], options.pack)) for item in items):
            left = [(item, short) for item, short in group if (item.source, item.key) not in done]
            if left:
                units.append(Unit([item for item, _ in left], [short for _, short in left]))
        return units
    todo = [item for item in items if (item.source, item.key) not in done]
    size = 1 if options.command == "call" else MESSAGES_PER_UNIT
    return [Unit(todo[i:i + size]) for i in range(0, len(todo), size)]


def _check(options: BatchOptions) -> None:
    if options.command not in COMMANDS:
        raise AgentError(f"unknown batch command '{options.command}' (choose {', '.join(COMMANDS)})")
    if options.workers < 0 or options.cpus_per_worker < 1 or options.gpus_per_worker < 0:
        raise AgentError("--workers must be 0 or more, --cpus-per-worker 1 or more, --gpus-per-worker 0 or more")


def _durations(items: list[archive.Item]) -> dict:
    """``source: (duration, channels)`` from each recording's header (read in parallel)."""
    with ThreadPoolExecutor(8) as pool:
        return dict(zip((i.source for i in items), pool.map(lambda i: audio.probe(i.path), items)))


def _rows(options: BatchOptions, settings: Settings, units: list[Unit]):
    """Lists of rows, as the workers finish units."""
    import json

    ray, started = _start(options.address)
    try:
        workers = min(_workers(ray, options), len(units))
        data = ray.data.from_items([{"unit": pickle.dumps(u)} for u in units],
                                   override_num_blocks=min(len(units), MAX_BLOCKS))
        if options.command != "call":
            # Light work (decoding a few clips, parsing mail) that asks for no core of its own, so the
            # workers may hold every core; capped so it cannot run far ahead of them.
            data = data.map_batches(prepare, fn_kwargs={"command": options.command, "channel": options.channel},
                                    batch_size=1, num_cpus=0, compute=ray.data.TaskPoolStrategy(size=workers + 1))
        replies = None
        if options.speak:
            replies = str(Path(options.speak).resolve())
            os.makedirs(replies, exist_ok=True)
        data = data.map_batches(
            Worker, fn_constructor_kwargs={"command": options.command, "settings": settings,
                                           "cpus": options.cpus_per_worker, "gpus": options.gpus_per_worker,
                                           "speakers": tuple(options.speakers), "replies": replies},
            batch_size=1, compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=options.cpus_per_worker,
            **({"num_gpus": options.gpus_per_worker} if options.gpus_per_worker else {}))
        for batch in data.iter_batches(batch_size=None, batch_format="numpy"):
            yield [json.loads(row) for row in batch["row"]]
    except (KeyboardInterrupt, AgentError):
        raise
    except Exception as exc:  # Ray's errors wrap the worker's: the innermost one names the problem
        raise AgentError(f"the batch run failed: {_root(exc)}") from None
    finally:
        if started:  # now, so that none of Ray's messages comes after the summary
            ray.shutdown()


def _start(address: str | None):
    """Ray, and whether this call started or joined it (and so leaves it at the end)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reports leave this machine
    import ray

    if ray.is_initialized():  # a caller in this process has already joined one
        return ray, False
    quiet = {"logging_level": logging.WARNING, "log_to_driver": bool(os.environ.get("SUPPORT_AGENT_DEBUG"))}
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            # Ray runs its workers at niceness 15 so that its own services come first; on a machine that
            # also runs other work, that left the workers a fraction of a core each. They are this
            # command's work, so they run at its priority.
            ray.init(num_cpus=_cores(), include_dashboard=False, _system_config={"worker_niceness": 0}, **quiet)
    except Exception as exc:  # connection and start-up errors come from several layers
        where = f"join the Ray cluster at '{address}'" if address else "start a Ray instance on this machine"
        raise AgentError(f"cannot {where}: {_root(exc)}") from None
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = True
    context.print_on_execution_start = False
    return ray, True


def _workers(ray, options: BatchOptions) -> int:
    resources = ray.cluster_resources()
    if options.gpus_per_worker:
        fit = int(resources.get("GPU", 0) // options.gpus_per_worker)
        what = f"{options.gpus_per_worker:g} GPU"
    else:
        fit = int(resources.get("CPU", 0) // options.cpus_per_worker)
        what = f"{options.cpus_per_worker} CPU"
    if fit < 1:
        raise AgentError(f"the Ray cluster has no room for a worker of {what} "
                         f"(it has {resources.get('CPU', 0):g} CPU, {resources.get('GPU', 0):g} GPU)")
    if options.workers > fit:
        raise AgentError(f"{options.workers} workers of {what} do not fit the Ray cluster (room for {fit})")
    return options.workers or fit


def _cores() -> int:
    return len(os.sched_getaffinity(0))


def _root(exc: BaseException) -> str:
    """The first line of the innermost error of a chain (Ray wraps a worker's error in its own)."""
    while True:
        inner = getattr(exc, "cause", None) or exc.__cause__
        if not isinstance(inner, BaseException) or inner is exc:
            break
        exc = inner
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else 'no detail'}"
