"""The handler keeps freed heap memory: a large temporary freed stays in the process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.handler.conftest import LAMBDA_SRC

# Allocates and frees an 8 MB array, then reports the heap's free bytes (glibc mallinfo2):
# retained memory shows there; memory given back to the OS (mmap, trim) does not.
PROBE = textwrap.dedent(
    """
    import ctypes, sys
    sys.path.insert(0, sys.argv[1])
    import numpy as np
    from inference import allocator
    if sys.argv[2] == "set":
        assert allocator.keep_freed_memory()
    class Info(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = Info
    block = np.ones(1 << 20)
    del block
    print(libc.mallinfo2().fordblks)
    """
)


def free_heap_bytes(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(LAMBDA_SRC), mode],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return int(out)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_a_freed_large_temporary_stays_in_the_heap() -> None:
    assert free_heap_bytes("default") < 8 << 20  # mmapped, then unmapped
    assert free_heap_bytes("set") >= 8 << 20
