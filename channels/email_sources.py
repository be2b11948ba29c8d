"""Where emails come from: an mbox file, a Maildir, a zip of .eml files, or one message on a stream.

Sources are read lazily, one message at a time, and each message is capped at
``email_parse.MAX_MESSAGE_BYTES``: a larger one is hashed as it streams past and reaches the
pipeline only as its header section, to be rejected. Nothing is ever held whole beyond that cap,
and input mailboxes are only read, never changed. Each message has a key for the exactly-once
state (``channels.email_state``): its Message-ID, or the SHA-256 of its bytes where it has none.
"""
from __future__ import annotations

import hashlib
import re
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import BinaryIO, Iterator

from agent.types import AgentError

from . import email_parse
from .email_parse import message_id_of

HEAD_BYTES = 256 * 1024  # how much of an oversized message is kept: enough for its header section
CHUNK = 1024 * 1024


@dataclass
class Item:
    """One message as read from a source."""

    source: str  # where it is: "mbox:12", "cur/1700000000.M1P2.host:2,S", "stdin"
    raw: bytes | None  # None when the message is larger than the cap
    size: int
    head: bytes  # the header section (at most HEAD_BYTES)
    digest: str  # SHA-256 of the whole message

    @cached_property
    def message_id(self) -> str | None:
        return message_id_of(self.head)

    @property
    def key(self) -> str:
        return self.message_id or f"sha256:{self.digest}"


class _Collector:
    """Gathers one message's bytes up to ``limit``; past it keeps only the head, and hashes all."""

    def __init__(self, limit: int | None = None):
        self.limit = email_parse.MAX_MESSAGE_BYTES if limit is None else limit
        self.size, self.parts, self.head = 0, [], b""
        self.hash = hashlib.sha256()

    def add(self, chunk: bytes) -> None:
        self.hash.update(chunk)
        self.size += len(chunk)
        if self.parts is not None:
            self.parts.append(chunk)
            if self.size > self.limit:
                self.head, self.parts = b"".join(self.parts)[:HEAD_BYTES], None

    @property
    def over(self) -> bool:
        return self.parts is None

    def item(self, source: str) -> Item:
        raw = b"".join(self.parts) if self.parts is not None else None
        return Item(source, raw, self.size, _header_section(raw if raw is not None else self.head),
                    self.hash.hexdigest())


def _header_section(raw: bytes) -> bytes:
    ends = [i for i in (raw.find(b"\n\n", 0, HEAD_BYTES), raw.find(b"\r\n\r\n", 0, HEAD_BYTES)) if i >= 0]
    return raw[:min(ends) + 1] if ends else raw[:HEAD_BYTES]


def read_mbox(path: str | Path) -> Iterator[Item]:
    """Messages of an mbox file (any 'From ' line at a line start begins one, as Python's mailbox reads it)."""
    path = Path(path)
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise AgentError(f"{path}: cannot read the mbox file ({exc.strerror})") from None
    start = f.read(CHUNK).lstrip()
    if start and not start.startswith(b"From "):
        f.close()
        raise AgentError(f"{path}: not an mbox file (it does not begin with a 'From ' line)")
    f.seek(0)
    return _mbox_items(f)


def _mbox_items(f: BinaryIO) -> Iterator[Item]:
    with f:
        index, collector, blank, at_start, in_separator = 0, None, None, True, False
        while line := f.readline(CHUNK):
            starts_line, at_start = at_start, line.endswith(b"\n")
            if in_separator:  # the rest of an overlong 'From ' line
                in_separator = not at_start
            elif starts_line and line.startswith(b"From "):
                if collector is not None:
                    yield collector.item(f"mbox:{index}")
                index, collector, blank, in_separator = index + 1, _Collector(), None, not at_start
            elif collector is not None:
                if blank is not None:
                    collector.add(blank)
                    blank = None
                if starts_line and line in (b"\n", b"\r\n"):
                    blank = line  # the separator before the next 'From ' line is not part of the message
                else:
                    collector.add(line)
        if collector is not None:
            yield collector.item(f"mbox:{index}")


def read_maildir(path: str | Path) -> Iterator[Item]:
    """Messages in a Maildir's new/ and cur/, in delivery order (see ``delivery_order``)."""
    root = Path(path)
    if not (root / "cur").is_dir() and not (root / "new").is_dir():
        raise AgentError(f"{root}: not a Maildir (no cur/ or new/ folder)")
    try:
        names = sorted(((name, sub) for sub in ("new", "cur") if (root / sub).is_dir()
                        for name in (p.name for p in (root / sub).iterdir()) if not name.startswith(".")),
                       key=lambda entry: (delivery_order(entry[0]), entry[1]))
    except OSError as exc:
        raise AgentError(f"{root}: cannot list the Maildir ({exc.strerror})") from None
    return _maildir_items(root, names)


def delivery_order(name: str) -> list:
    """Sort key of a Maildir file name: its runs of digits compared as numbers. Names begin with the
    delivery time, ``SECONDS.M<microseconds>P<pid>...``, and the microseconds are not zero-padded, so
    plain string order puts ``M99999`` after ``M123456`` of the same second."""
    return [int(part) if i % 2 else part for i, part in enumerate(re.split(r"(\d+)", name))]


def _maildir_items(root: Path, names: list[tuple[str, str]]) -> Iterator[Item]:
    for name, sub in names:
        file = root / sub / name
        try:
            with open(file, "rb") as f:
                yield _read_stream(f, f"{sub}/{name}")
        except (FileNotFoundError, IsADirectoryError):
            continue  # moved or removed by another program since it was listed
        except OSError as exc:
            raise AgentError(f"{file}: cannot read ({exc.strerror})") from None


def read_bytes(raw: bytes, source: str) -> Item:
    """One message already in memory (as an IMAP server hands it over), capped as every source is."""
    collector = _Collector()
    collector.add(raw)
    return collector.item(source)


def read_stream(stream: BinaryIO, source: str = "stdin") -> Iterator[Item]:
    """One message from a byte stream (standard input); reading stops once it is over the cap."""
    yield _read_stream(stream, source, stop_when_over=True)


def _read_stream(stream: BinaryIO, source: str, stop_when_over: bool = False) -> Item:
    collector = _Collector()
    while chunk := stream.read(CHUNK):
        collector.add(chunk)
        if stop_when_over and collector.over:
            break
    return collector.item(source)


def open_source(mbox: str | None = None, maildir: str | None = None, stream: BinaryIO | None = None) -> Iterator[Item]:
    if mbox:
        return read_mbox(mbox)
    if maildir:
        return read_maildir(maildir)
    return read_stream(stream)


def read_zip(path: str | Path, members: list[str] | None = None) -> Iterator[Item]:
    """The .eml files of a zip archive (``members``: those names only; see ``zip_members``), each read
    capped, so that a zip bomb is cut off at the email size limit."""
    path = Path(path)
    names = zip_members(path) if members is None else members
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise AgentError(f"{path.name} cannot be read as a zip file ({str(exc) or type(exc).__name__})") from None
    with archive:
        for name in names:
            try:
                with archive.open(name) as f:
                    yield from read_stream(f, source=name)
            except (zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError, OSError) as exc:
                raise AgentError(f"{name} cannot be read from the zip file ({str(exc) or type(exc).__name__})") from None


def zip_members(path: str | Path) -> list[str]:
    """The names of the .eml files in a zip archive; an error if it holds none."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = [m.filename for m in archive.infolist() if not m.is_dir() and m.filename.lower().endswith(".eml")]
    except (zipfile.BadZipFile, OSError) as exc:
        raise AgentError(f"{path.name} cannot be read as a zip file ({str(exc) or type(exc).__name__})") from None
    if not names:
        raise AgentError(f"{path.name} holds no .eml files")
    return names


def count_mbox(path: str | Path) -> int:
    """How many messages an mbox file holds (its lines that begin with 'From '), read without parsing."""
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f if line.startswith(b"From "))
    except OSError as exc:
        raise AgentError(f"{path}: cannot read the mbox file ({exc.strerror})") from None
