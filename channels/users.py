"""The demo's users: a file of names and salted password hashes (setting ``users_file``).

One user a line, ``NAME:HASH``, as htpasswd keeps them; the hash is Argon2id (argon2-cffi's defaults:
RFC 9106's low-memory profile, a random 16-byte salt per password). A password is never stored or logged
in clear. The file is written whole to a temporary file and renamed over the old one, under a lock, so two
``support-agent users`` commands at once never lose a user, and a serving demo never reads half a file.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from agent.types import AgentError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024  # hashing cost grows with the length; nobody types more
_HASHER = PasswordHasher()
# Checked against when the name is unknown, so that a wrong name takes as long as a wrong password.
_UNKNOWN = _HASHER.hash("no such user: the time of a real check")


def unset() -> AgentError:
    return AgentError("no users file: set users_file (--set users_file=PATH, SUPPORT_AGENT_USERS_FILE or the "
                      "settings file)")


def read(path: str | os.PathLike) -> dict[str, str]:
    """``{name: hash}`` of the users file; a missing file has no users."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise AgentError(f"cannot read users file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    users = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        name, _, hashed = line.partition(":")
        if not NAME.fullmatch(name) or not hashed.startswith("$argon2"):
            raise AgentError(f"users file {path}, line {number}: not NAME:ARGON2-HASH")
        users[name] = hashed
    return users


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise AgentError(f"bad user name {name[:70]!r}: 1 to 64 letters, digits and . _ @ - (a letter or digit "
                         "first)")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise AgentError(f"password too short: at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise AgentError(f"password too long: at most {MAX_PASSWORD_CHARS} characters")
    return password


def add(path: str | os.PathLike, name: str, password: str, replace: bool = False) -> None:
    check_name(name)
    hashed = _HASHER.hash(check_password(password))
    with _locked(path):
        users = read(path)
        if name in users and not replace:
            raise AgentError(f"user '{name}' already exists (add --replace to set a new password)")
        users[name] = hashed
        _write(path, users)


def remove(path: str | os.PathLike, name: str) -> None:
    with _locked(path):
        users = read(path)
        if name not in users:
            raise AgentError(f"no user '{name[:70]}' in {path}")
        del users[name]
        _write(path, users)


def verify(users: dict[str, str], name: str, password: str) -> bool:
    """Whether ``password`` is ``name``'s; an unknown name costs the same time as a wrong password."""
    try:
        return _HASHER.verify(users.get(name, _UNKNOWN), password[:MAX_PASSWORD_CHARS]) and name in users
    except (VerificationError, InvalidHashError):
        return False


@contextlib.contextmanager
def _locked(path: str | os.PathLike):
    """An exclusive lock on the users file as it is now (a rename by another writer is waited out)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
            os.close(fd)  # another writer replaced the file while we waited: lock the new one
    except OSError as exc:
        raise AgentError(f"cannot open users file {path}: {exc.strerror or exc}") from None
    try:
        yield
    finally:
        os.close(fd)


def _write(path: str | os.PathLike, users: dict[str, str]) -> None:
    path = Path(path)
    text = "".join(f"{name}:{hashed}\n" for name, hashed in sorted(users.items()))
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(temporary, path)
    except OSError as exc:
        raise AgentError(f"cannot write users file {path}: {exc.strerror or exc}") from None
