"""Training in several processes at once (``accelerate launch``, ``torchrun``): the Hugging Face Trainer
splits each batch across them and keeps their models equal; these say which process writes the
results and let the others wait for it. In one plain process they change nothing."""
from __future__ import annotations

import os


def count() -> int:
    """How many processes train together (1 when not launched as several)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    """The process that writes the model, its metrics and its version (the first one)."""
    return int(os.environ.get("RANK", "0")) == 0


def wait_for_everyone() -> None:
    """Until every process gets here: what the main process wrote is then there for the others to read."""
    if count() > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()


def cpu_threads() -> int:
    """Torch threads for this process: the cores shared out among the processes on this machine."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max((os.cpu_count() or 1) // local, 1)
