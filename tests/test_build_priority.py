"""Index builds run at low priority that still progresses: SCHED_BATCH, nice 10, the lowest
best-effort I/O level (not SCHED_IDLE, which starved builds and purges on a busy machine)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import ctypes, os
from clarity.store.edge.child import _yield_cpu
_yield_cpu()
libc = ctypes.CDLL("libc.so.6", use_errno=True)
ioprio = libc.syscall(252 if os.uname().machine == "x86_64" else 31, 1, 0)  # ioprio_get(PROCESS, self)
print(os.sched_getscheduler(0) == os.SCHED_BATCH, os.nice(0), ioprio >> 13, ioprio & 0x1FFF)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="scheduling classes are Linux's")
def test_the_build_child_takes_batch_scheduling_nice_10_and_the_lowest_io_level() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["True", "10", "2", "7"], done.stdout + done.stderr
