"""Process lifecycle of a ``torchrun`` job: no rank outlives the job, a hung rank stops it.

:func:`hfus_xai_bench.distributed.session` calls these when a rank joins its process group:

- :func:`die_with_launcher`: on Linux the rank asks the kernel for SIGKILL when its parent (the
  torchrun agent) dies, so killing the launcher — even with SIGKILL, which it cannot forward — takes
  every rank with it; a rank whose launcher is already gone exits at once.
- :func:`rank_timeout`: how long a rank waits for the others at a collective (gather / broadcast):
  ``HFUS_BENCH_RANK_TIMEOUT`` seconds, default 6 hours (the slowest rank's whole share must fit). After
  it the waiting ranks raise, exit non-zero, and torchrun stops the rest of the group (a failed worker
  makes the agent terminate every worker); a rank that dies closes its connections, so the others
  fail at once.
"""

from __future__ import annotations

import ctypes
import datetime
import os
import signal
import sys

from .errors import HfusError

__all__ = ["DEFAULT_RANK_TIMEOUT", "RANK_TIMEOUT_ENV", "die_with_launcher", "rank_timeout"]

#: environment variable: seconds a rank waits for the others at a collective
RANK_TIMEOUT_ENV = "HFUS_BENCH_RANK_TIMEOUT"
DEFAULT_RANK_TIMEOUT = datetime.timedelta(hours=6)

_PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)


def rank_timeout() -> datetime.timedelta:
    """The collective timeout: ``$HFUS_BENCH_RANK_TIMEOUT`` seconds, else :data:`DEFAULT_RANK_TIMEOUT`."""
    text = os.environ.get(RANK_TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_RANK_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise HfusError(f"{RANK_TIMEOUT_ENV} must be a number of seconds > 0, got {text!r}")
    return datetime.timedelta(seconds=seconds)


def die_with_launcher() -> bool:
    """Ask for SIGKILL when the parent process dies (Linux); exit now if it is already gone.

    Returns True when the request was made (False on other systems, where the launcher's own
    cleanup is all there is).
    """
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if parent == 1 or os.getppid() != parent:  # the launcher died before the request took effect
        os._exit(1)
    return True
