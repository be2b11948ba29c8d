"""How every finetune script ends: its summary as one JSON line on stdout and exit status 0, or a
one-line error on stderr and status 1 (as ``support-agent`` does for bad input)."""
from __future__ import annotations

import json
import sys
from typing import Callable

from agent.types import AgentError
from finetune import processes

EXIT_ERROR = 1


def run(name: str, work: Callable[[], dict]) -> int:
    try:
        summary = work()
    except AgentError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if processes.is_main():  # several training processes write one summary
        print(json.dumps(summary, ensure_ascii=False))
    return 0
