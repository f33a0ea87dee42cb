"""glibc's own account of its heap (`mallinfo2`): what the resident set alone cannot tell
apart, memory in use from freed memory the allocator still holds. Imports nothing of the
project."""

from __future__ import annotations

import ctypes

MIB = 2**20
_FIELDS = (
    "arena",
    "ordblks",
    "smblks",
    "hblks",
    "hblkhd",
    "usmblks",
    "fsmblks",
    "uordblks",
    "fordblks",
    "keepcost",
)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in _FIELDS]


def heap_mb() -> dict[str, float]:
    """MiB in use, free but held, and in mmapped chunks; {} without glibc 2.33+."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallinfo2 = libc.mallinfo2
    except (OSError, AttributeError):
        return {}
    mallinfo2.restype = _MallInfo2
    m = mallinfo2()
    return {
        "heap_in_use_mb": round(m.uordblks / MIB, 1),
        "heap_free_mb": round(m.fordblks / MIB, 1),
        "mmapped_mb": round(m.hblkhd / MIB, 1),
    }
