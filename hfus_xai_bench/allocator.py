"""Keep freed memory in the process (glibc), so CPU forwards do not page-fault on every activation.

glibc's ``malloc`` serves blocks above its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and
returns them with ``munmap`` when freed. A CPU forward at the scoring batch allocates activations of tens to
hundreds of MiB, so every forward maps fresh pages and the kernel zero-fills them on first touch: about as
much system time as computation (benchmarks/README.md). :func:`keep_freed_memory` makes glibc serve every
block from its heap and keep freed memory there (``mallopt``: no mmap, no trimming), so the pages of one
forward are reused by the next. The process then holds its peak memory until it exits. Numbers do not
change (only where memory comes from). A no-op off glibc, when :data:`ENV_SWITCH` is ``0``, and after
the first call.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

#: set to ``0`` to leave the C allocator as it is
ENV_SWITCH = "HFUS_KEEP_FREED_MEMORY"

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_TRIM_NEVER = 2**31 - 1

_done: list[bool] = []


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse (once per process). Returns whether the allocator is so set."""
    if _done:
        return _done[0]
    ok = False
    if os.environ.get(ENV_SWITCH, "1") != "0":
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name) if name else None
            mallopt = getattr(libc, "mallopt", None)
        except OSError:
            mallopt = None
        if mallopt is not None:
            ok = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_NEVER))
    _done.append(ok)
    return ok
