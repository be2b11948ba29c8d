"""Model versions: what was trained on what, and which version the agent uses.

Layout under ``Settings.models_dir``::

    <kind>/<version-id>/            a trained artefact (kind: "intent", "generator") + version.json
    <kind>/current.json             {"version": id, "promoted": time, "history": [earlier ids]}

``version.json`` says what the artefact is: kind, id, creation time, base model, the SHA-256 of the
training files, the training settings, metrics, and the version it was trained from. The fine-tune
scripts write it (``write_version``); promotion copies an artefact in and moves the pointer
(``install``, ``set_current``); the setting value "default" resolves to the promoted version, or to
the artefact shipped in the package when none has been promoted (``resolve``). Pointer writes are
atomic (write a temporary file, then rename), so a reader never sees half a pointer.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from .types import AgentError

VERSION_FILE = "version.json"
POINTER = "current.json"
SHIPPED = "shipped"  # the version name of the artefact inside the package
KINDS = ("intent", "generator")


def data_hash(files: list[str | os.PathLike]) -> str:
    """SHA-256 over the training files' contents, in the order given."""
    digest = hashlib.sha256()
    for name in files:
        try:
            with open(name, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
        except OSError as exc:
            raise AgentError(f"cannot hash training file {name}: {exc.strerror or exc}") from None
    return digest.hexdigest()


def write_version(out_dir: str | os.PathLike, kind: str, metrics: dict, train_files: list[str | os.PathLike],
                  base_model: str, settings: dict, parent: str | None = None) -> dict:
    """Write ``out_dir/version.json`` for a freshly trained artefact and return it.

    ``metrics``: what the script measured (validation, held-out); ``settings``: the training options
    (anything JSON can hold; paths become strings); ``parent``: the version trained from, if any."""
    now = datetime.now(timezone.utc)
    hashed = data_hash(train_files)
    info = {"kind": kind, "id": f"{now:%Y%m%d-%H%M%S}-{hashed[:8]}", "created": now.isoformat(),
            "base_model": base_model, "data_hash": hashed, "train_files": [str(f) for f in train_files],
            "settings": json.loads(json.dumps(settings, default=str)), "metrics": metrics, "parent": parent}
    _write_json(Path(out_dir) / VERSION_FILE, info)
    return info


def read_version(directory: str | os.PathLike) -> dict:
    path = Path(directory) / VERSION_FILE
    if not path.is_file():
        raise AgentError(f"{directory} is not a model version: no {VERSION_FILE} (train it with a finetune script)")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise AgentError(f"{path} is unreadable: {exc}") from None
    if not isinstance(info, dict) or not {"kind", "id"} <= info.keys():
        raise AgentError(f"{path} is not a version description (needs 'kind' and 'id')")
    return info


def pointer(models_dir: str | os.PathLike, kind: str) -> dict:
    """The promotion pointer of ``kind``: {"version": id or None, "history": [...]}."""
    path = Path(models_dir) / kind / POINTER
    if not path.is_file():
        return {"version": None, "history": []}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise AgentError(f"promotion pointer {path} is unreadable: {exc}") from None


def current(models_dir: str | os.PathLike | None, kind: str) -> Path | None:
    """The directory of the promoted ``kind`` version, or None when the shipped one is in use."""
    if not models_dir:
        return None
    version = pointer(models_dir, kind).get("version")
    if version is None:
        return None
    path = Path(models_dir) / kind / version
    if not path.is_dir():
        raise AgentError(f"promoted {kind} version {version} is missing from {path.parent} "
                         f"(run: support-agent models rollback --kind {kind})")
    return path


def resolve(kind: str, name: str | os.PathLike, shipped: Path, models_dir: str | os.PathLike | None) -> Path:
    """A model setting as a directory: "default" is the promoted version, else ``shipped``; anything
    else is a path."""
    if str(name) != "default":
        return Path(name)
    return current(models_dir, kind) or shipped


def versions(models_dir: str | os.PathLike, kind: str) -> list[dict]:
    """Every stored version of ``kind``, oldest first, each with its "path"; unreadable ones are skipped."""
    root = Path(models_dir) / kind
    found = []
    for directory in sorted(root.iterdir()) if root.is_dir() else []:
        if not directory.name.startswith(".") and (directory / VERSION_FILE).is_file():  # .x: copies in progress
            try:
                found.append({**read_version(directory), "path": str(directory)})
            except AgentError:
                continue
    return sorted(found, key=lambda v: v.get("created", ""))


def install(models_dir: str | os.PathLike, source: str | os.PathLike) -> Path:
    """Copy a trained artefact into the store (once; a version already there is reused); its directory."""
    info = read_version(source)
    target = Path(models_dir) / info["kind"] / info["id"]
    if Path(source).resolve() == target.resolve() or target.is_dir():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{info['id']}-", dir=target.parent))
        shutil.copytree(source, staging, dirs_exist_ok=True, ignore=shutil.ignore_patterns("checkpoints"))
        staging.rename(target)  # whole or not at all: an interrupted copy leaves only a hidden temp dir
    except OSError as exc:
        raise AgentError(f"cannot copy {source} into {target.parent}: {exc.strerror or exc}") from None
    return target


def set_current(models_dir: str | os.PathLike, kind: str, version: str) -> dict:
    """Point ``kind`` at ``version`` (already installed), remembering the previous one for rollback."""
    state = pointer(models_dir, kind)
    history = [*state.get("history", []), *([state["version"]] if state.get("version") else [])]
    state = {"version": version, "promoted": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "history": history}
    _write_json(Path(models_dir) / kind / POINTER, state)
    return state


def rollback(models_dir: str | os.PathLike, kind: str) -> dict:
    """Go back to the version promoted before the current one (the shipped one after the first)."""
    state = pointer(models_dir, kind)
    if state.get("version") is None:
        raise AgentError(f"nothing to roll back: the shipped {kind} model is in use")
    history = list(state.get("history", []))
    previous = history.pop() if history else None
    state = {"version": previous, "promoted": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "history": history, "rolled_back": state["version"]}
    _write_json(Path(models_dir) / kind / POINTER, state)
    return state


def _write_json(path: Path, data: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        os.replace(temporary, path)
    except OSError as exc:
        raise AgentError(f"cannot write {path}: {exc.strerror or exc}") from None
