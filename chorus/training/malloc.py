"""How training's processes take memory from glibc's malloc: large blocks handed back at once where memory peaks
matter (every component), kept for reuse where the same large blocks come and go by the thousand (ranking's score
blocks). Elsewhere (no glibc) nothing changes."""

from __future__ import annotations

import contextlib
import ctypes
import sys
from collections.abc import Iterator

#: Allocations of at least this many bytes get a mapping of their own from glibc's malloc (:func:`map_large_blocks`).
MMAP_THRESHOLD = 1 << 20
#: Inside :func:`heap_blocks`: allocations up to this size come from the heap, which keeps them when freed.
HEAP_BLOCK = 1 << 28
#: glibc's default: free memory above this at the top of the heap goes back to the system.
TRIM_THRESHOLD = 128 * 1024
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h


def _mallopt(param: int, value: int) -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").mallopt(param, value)


def map_large_blocks() -> None:
    """Have glibc's malloc serve every allocation of :data:`MMAP_THRESHOLD` bytes or more from a mapping of its
    own, which ``free`` hands back to the system at once (``mallopt(M_MMAP_THRESHOLD)``); forked workers inherit
    the setting. By default glibc raises that threshold, up to 32 MiB, each time such a block is freed; blocks
    below it then come from the heap, which keeps what is freed in it. Training allocates and frees arrays of a
    few MiB by the thousand in every process (the ALS batches' pieces, the table's blocks), so each would hold
    tens of MiB of free heap: on 1M generated reviews, the rating component alone on 2 workers peaked at 609 MiB
    of PSS with glibc's default and 418 MiB with this, in about the same time."""
    _mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    _mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)


@contextlib.contextmanager
def heap_blocks() -> Iterator[None]:
    """Inside, blocks up to :data:`HEAP_BLOCK` bytes come from the heap and stay there when freed; on leaving,
    :func:`map_large_blocks`' setting is back. For ranking's selection, live choice and report, which score
    users a block of tens of MiB at a time, thousands of times: each block on a fresh mapping costs the kernel a
    zeroed page per 4 KiB every time (on the 200,000 demo reviews, 1 worker: 12 s of 84 in the ranking component,
    most of them system time). Their peak is one process's few blocks, so what the heap keeps is small."""
    _mallopt(_M_MMAP_THRESHOLD, HEAP_BLOCK)
    _mallopt(_M_TRIM_THRESHOLD, HEAP_BLOCK)
    try:
        yield
    finally:
        map_large_blocks()
