"""The layers hold: import-linter's contracts (pyproject.toml, [tool.importlinter]) are kept and bite; names that
moved still import from their old modules."""
import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    # --no-cache: a cached graph of another tree must not answer for this one
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=120)


def lint_imports_with(root: Path, module: str, line: str) -> subprocess.CompletedProcess:
    """The contracts checked on a copy of the packages under ``root`` where ``module`` gains ``line``."""
    for package in ("agent", "channels", "finetune"):
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("data", "__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root)
    path = root / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}  # noqa\n", encoding="utf-8")
    return lint_imports(root)


def test_the_import_contracts_are_kept():
    done = lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 kept, 0 broken" in done.stdout


def test_a_channel_imported_by_the_core_breaks_a_contract(tmp_path):
    done = lint_imports_with(tmp_path, "agent/types.py", "import channels.rows")
    assert done.returncode == 1 and "agent (the core) imports neither a channel nor training code BROKEN" in done.stdout
    assert "agent.types -> channels.rows" in done.stdout


def test_an_engine_importing_its_chooser_back_is_a_cycle(tmp_path):
    done = lint_imports_with(tmp_path, "channels/tts.py", "from . import tts_coqui")
    assert done.returncode == 1 and "no import cycles among the modules of agent, of channels" in done.stdout
    assert ".tts -> .tts_coqui" in done.stdout or ".tts_coqui -> .tts" in done.stdout


@pytest.mark.parametrize("old, new, names", [
    ("agent.models", "agent.model_versions", ["read_version", "install", "rollback", "SHIPPED", "KINDS"]),
    ("agent.store", "agent.packaged_weights", ["whisper_ct2", "whisper_checkpoint", "encoder", "piper_voice"]),
    ("agent.sentiment", "agent.handover", ["handover_reason", "cue_reason", "given_reason", "REASONS", "PERSON"]),
    ("agent.entities", "agent.pii", ["mask_pii", "names", "PII_KINDS"]),
    ("finetune.versions", "agent.promotion", ["promote", "compare", "Comparison"]),
    ("finetune.data", "agent.labelled", ["read_examples", "rows", "label_of"]),
    ("channels.coqui_tts", "channels.tts_coqui", ["CoquiEngine", "coqui_voice", "coqui_checkpoint"]),
])
def test_moved_names_still_import_from_their_old_modules(old, new, names):
    old_module, new_module = importlib.import_module(old), importlib.import_module(new)
    for name in names:
        assert getattr(old_module, name) is getattr(new_module, name), name
