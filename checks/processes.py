"""Child processes that end with the process that started them, however it ends."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import Callable

PR_SET_PDEATHSIG = 1


def dies_with_parent(signum: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A preexec_fn that has the kernel send the child `signum` when this process dies, even by
    SIGKILL (PR_SET_PDEATHSIG, Linux); None where there is no prctl. libc is looked up here,
    before the fork. The signal follows the *thread* that forked the child: start it from a
    thread that lives as long as the process."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)  # it does not fail for a valid signal
        if os.getppid() != parent:  # the parent died before the request: no signal will come
            os._exit(1)

    return preexec
