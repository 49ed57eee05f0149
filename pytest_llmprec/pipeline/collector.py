"""``collector_paused``: Python's cyclic garbage collector paused while a phase builds many objects
that all stay alive (a dump's records, its pairs, a token's evaluations, the report rows).

The collector runs after every 700 net allocations and, every few hundred runs, walks every object
of the process; while a phase only adds objects that live on, those walks find nothing and cost a
third of indexing 100,000 files. Nothing is collected later than it would be after the phase: the
collector runs again when it is resumed.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block (as it was when the block started: a
    collector the caller disabled stays disabled, nested blocks resume it once)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
