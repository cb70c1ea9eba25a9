"""The worker process's own settings applied at start."""

from __future__ import annotations

import subprocess
import sys

LOWER_TWICE = """
import os
from botplatform.worker.runner import lower_priority
lower_priority(7)
print(os.getpriority(os.PRIO_PROCESS, 0))
lower_priority(3)  # never raised again (and an unprivileged process could not)
print(os.getpriority(os.PRIO_PROCESS, 0))
"""


def test_lower_priority_lowers_and_never_raises() -> None:
    done = subprocess.run(  # a process of its own: niceness cannot be taken back
        [sys.executable, "-c", LOWER_TWICE], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["7", "7"]
