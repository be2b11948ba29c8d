"""Archives as items for ``support-agent batch``: each recording or message with where it came from and
the SHA-256 of its content (what a resumed run recognises it by).

Recordings: files, folders (every file under them that is not hidden, in path order), glob patterns,
and manifests (``.csv``, ``.jsonl``, ``.parquet``) with a ``path`` column, relative to the manifest.
Messages: the same manifests with a ``text`` column (or ``path``: a file holding one message), mbox
files, Maildirs, ``.txt`` files (one message a line, as ``support-agent classify -`` reads them), and
any other file or folder of files, each file one message (an ``.eml`` is parsed as an email).

A whole input that cannot be used (missing, a manifest without the column) is a one-line error before
anything runs; a bad item inside one (a missing file, an oversized message) becomes an item with its
``error``, so its row says why and the others go on.
"""
from __future__ import annotations

import csv
import glob
import hashlib
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from agent.types import AgentError, first_line, without_surrogates

from . import email_parse, email_sources

MANIFESTS = (".csv", ".jsonl", ".parquet")
CHUNK = 1 << 20


@dataclass
class Item:
    source: str  # a path, or "FILE:N" for the Nth message of a file
    key: str  # SHA-256 of the recording's bytes or the message's text
    path: str | None = None  # a recording
    text: str | None = None  # a message (plain text, or a whole RFC 5322 email)
    error: str | None = None  # why the item could not be read


def recordings(inputs: list[str], threads: int = 8) -> list[Item]:
    """Every recording the inputs name, in order, with its content hash (files hashed in parallel)."""
    paths = [path for spec in inputs for path in _paths(spec, _manifest_paths)]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(_recording, paths))


def messages(inputs: list[str]) -> list[Item]:
    return [item for spec in inputs for item in _messages(spec)]


def _recording(path: str) -> Item:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
    except OSError:  # decoding it gives the reason, in the same words as the single-item command
        digest.update(f"unreadable:{path}".encode())
    return Item(path, digest.hexdigest(), path=path)


def _paths(spec: str, manifest: Callable[[Path], list[str]]) -> list[str]:
    """Files named by one input: a file (a manifest read by ``manifest``), a folder, or a glob pattern."""
    path = Path(spec)
    if path.is_dir():
        return [str(p) for p in sorted(path.rglob("*")) if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)]
    if path.is_file():
        return manifest(path) if path.suffix.lower() in MANIFESTS else [spec]
    if glob.has_magic(spec):
        found = sorted(p for p in glob.glob(spec, recursive=True) if Path(p).is_file())
        if not found:
            raise AgentError(f"no file matches '{spec}'")
        return [q for p in found for q in (manifest(Path(p)) if Path(p).suffix.lower() in MANIFESTS else [p])]
    raise AgentError(f"{spec}: no such file or folder")


def _manifest_paths(manifest: Path) -> list[str]:
    rows = list(_manifest_rows(manifest))
    if rows and "path" not in rows[0][1]:
        raise AgentError(f"{manifest}: a manifest of recordings needs a 'path' column")
    return [_beside(manifest, row["path"]) for _, row in rows]


def _beside(manifest: Path, path: str) -> str:
    return path if Path(path).is_absolute() else str(manifest.parent / path)


def _manifest_rows(manifest: Path) -> Iterator[tuple[int, dict]]:
    """``(row number, row)`` of a CSV, JSON lines or Parquet file."""
    suffix = manifest.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            yield from enumerate(pq.read_table(manifest).to_pylist(), 1)
        elif suffix == ".csv":
            with open(manifest, newline="", encoding="utf-8", errors="replace") as f:
                yield from enumerate(csv.DictReader(f), 1)
        else:
            with open(manifest, encoding="utf-8", errors="replace") as f:
                for number, line in enumerate(f, 1):
                    if line.strip():
                        row = json.loads(line)
                        if not isinstance(row, dict):
                            raise ValueError("each line must be a JSON object")
                        yield number, row
    except (OSError, ValueError, UnicodeError) as exc:  # json, csv and pyarrow errors are ValueErrors
        raise AgentError(f"{manifest}: cannot read the manifest ({first_line(exc)})") from None


# Messages ------------------------------------------------------------------------------------------------

def _messages(spec: str) -> Iterator[Item]:
    path = Path(spec)
    if path.is_dir() and ((path / "cur").is_dir() or (path / "new").is_dir()):
        yield from (_mail(f"{spec}:{m.source}", m) for m in email_sources.read_maildir(path))
        return
    for file in _paths(spec, lambda manifest: [str(manifest)]):
        yield from _file_messages(Path(file))


def _file_messages(file: Path) -> Iterator[Item]:
    suffix = file.suffix.lower()
    if suffix in MANIFESTS:
        yield from _manifest_messages(file)
    elif suffix == ".txt":
        text = _read_text(file)
        yield from (_message(f"{file}:{n}", line) for n, line in enumerate(text.splitlines(), 1) if line.strip())
    elif _is_mbox(file):
        yield from (_mail(f"{file}:{m.source.split(':', 1)[1]}", m) for m in email_sources.read_mbox(file))
    else:
        try:
            yield _message(str(file), _read_text(file))
        except AgentError as exc:
            yield Item(str(file), _hash(f"unreadable:{file}"), error=str(exc))


def _manifest_messages(manifest: Path) -> Iterator[Item]:
    for number, row in _manifest_rows(manifest):
        if "text" not in row and "path" not in row:
            raise AgentError(f"{manifest}: a manifest of messages needs a 'text' or a 'path' column")
        if row.get("text") is not None:
            yield _message(f"{manifest}:{number}", str(row["text"]))
            continue
        file = Path(_beside(manifest, str(row.get("path") or "")))
        try:
            yield _message(str(file), _read_text(file))
        except AgentError as exc:
            yield Item(str(file), _hash(f"unreadable:{file}"), error=str(exc))


def _mail(source: str, item: email_sources.Item) -> Item:
    if item.raw is None:
        return Item(source, item.digest, error=f"message of {item.size:,} bytes is over the "
                                               f"{email_parse.MAX_MESSAGE_BYTES:,}-byte limit")
    return Item(source, item.digest, text=without_surrogates(item.raw.decode("utf-8", errors="replace")))


def _message(source: str, text: str) -> Item:
    return Item(source, _hash(text), text=text)


def _read_text(file: Path) -> str:
    try:
        return file.read_bytes().decode("utf-8", errors="replace")  # as the commands read standard input
    except OSError as exc:
        raise AgentError(f"{file}: cannot read ({exc.strerror})") from None


def _is_mbox(file: Path) -> bool:
    try:
        with open(file, "rb") as f:
            return f.read(5) == b"From "
    except OSError:
        return False


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()
