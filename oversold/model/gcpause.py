"""The cyclic garbage collector paused while a history is read, paired, indexed and checked.

Those steps allocate millions of short tuples and dicts that hold no cycle; each
allocation counts towards a collection, and each full collection walks every live
container again (about a sixth of the time of a 10^6-record check, measured). Plain
reference counting still frees everything as usual; only the cycle search waits.

Usage::

    with gc_paused():
        view = SaleView.build(ops, final)
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic collector for the block; re-enable it after only if it was enabled (nests)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
