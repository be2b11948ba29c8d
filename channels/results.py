"""The rows of a batch run in its output folder: each item exactly once, however often the run is killed.

Rows arrive in parts (``OUT/.parts/part-*.parquet``), each written to a temporary name and renamed
whole, so a part is either all there or not there at all; a killed run loses at most the rows not yet
in a part, and a resumed run (``done``: every ``(source, key)`` already written) does only the rest.
``finish`` joins everything into ``OUT/results.parquet`` (one schema for all rows, in input order,
each ``(source, key)`` once) and removes the parts. Readers that open the folder see that one file: the
parts folder and temporary files start with a dot, which Parquet readers skip.
"""
from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

from agent.types import AgentError, first_line

RESULTS = "results.parquet"
PARTS = ".parts"
FIRST = ("source", "key", "error")  # columns every row has, first
PART_ROWS, PART_SECONDS = 256, 1.0  # a part is written at this many rows, or after this long


class Results:
    def __init__(self, out: str | os.PathLike, resume: bool):
        self.out = Path(out)
        self.parts = self.out / PARTS
        try:
            self.parts.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AgentError(f"{self.out}: cannot create the output folder ({exc.strerror})") from None
        for partial in [*self.out.glob(".*.tmp"), *self.parts.glob(".*.tmp")]:  # a killed run's half-written
            partial.unlink()  # file: its rows are redone
        written = self._written()
        if written and not resume:
            raise AgentError(f"{self.out} already holds the results of a run: --resume finishes it without "
                             "repeating work, or choose another folder")
        self.done = {(row["source"], row["key"]) for row in written}
        self.pending: list[dict] = []
        self.flushed_at = time.monotonic()

    def add(self, rows: list[dict]) -> None:
        self.pending += rows
        if len(self.pending) >= PART_ROWS or time.monotonic() - self.flushed_at >= PART_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            # named in the order written (the clock first), so that of a row written twice the first is kept
            name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
            _write(_table(self.pending), self.parts / name)
            self.pending = []
        self.flushed_at = time.monotonic()

    def finish(self, keys: dict[str, str], jsonl: str | None = None) -> Path:
        """One file of every row; ``keys`` (source: key, in input order) decides the order, and drops rows
        of a source whose content has changed since they were written."""
        self.flush()
        order = {source: i for i, source in enumerate(keys)}
        rows, seen = [], set()
        for row in self._written():
            identity = (row["source"], row["key"])
            if identity in seen or keys.get(row["source"], row["key"]) != row["key"]:
                continue
            seen.add(identity)
            rows.append(row)
        rows.sort(key=lambda row: order.get(row["source"], len(order)))
        path = self.out / RESULTS
        _write(_table(rows), path)
        for part in self.parts.glob("part-*.parquet"):
            part.unlink()
        if jsonl:
            _write_jsonl(rows, Path(jsonl))
        return path

    def _written(self) -> list[dict]:
        import pyarrow.parquet as pq

        files = [self.out / RESULTS] if (self.out / RESULTS).is_file() else []
        rows = []
        for file in files + sorted(self.parts.glob("part-*.parquet")):
            try:
                rows += pq.read_table(file).to_pylist()
            except (OSError, ValueError) as exc:
                raise AgentError(f"{file}: not readable as Parquet ({first_line(exc)}); "
                                 "move it away to go on") from None
        return rows


def _table(rows: list[dict]):
    """Rows as one Arrow table: a column for every field any row has (missing ones null), each typed
    from all its values, so error rows and rows of every shape share one schema."""
    import pyarrow as pa

    names = list(FIRST)
    for row in rows:
        names += [name for name in row if name not in names]
    return pa.table({name: pa.array([row.get(name) for row in rows]) for name in names})


def _write(table, path: Path) -> None:
    """Written under a temporary name and renamed: the file is whole or absent, never half there."""
    import pyarrow.parquet as pq

    partial = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, partial)
    with open(partial, "rb") as f:
        os.fsync(f.fileno())
    os.replace(partial, path)


def _write_jsonl(rows: list[dict], path: Path) -> None:
    partial = path.with_name(f".{path.name}.tmp")
    with open(partial, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(partial, path)
