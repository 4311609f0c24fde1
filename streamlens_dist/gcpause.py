"""Pause Python's cyclic garbage collector around bulk conversions of plain data.

Partials of captures with many flows are millions of small lists, tuples and dicts. None of
them can form a reference cycle, but creating them keeps triggering collections that each walk
every live container: with 40,000 flows that was most of the run (wire decoding ~10 us per
tuple). Reference counting still frees everything; the collector runs again afterwards.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def without_gc(fn: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if not gc.isenabled():  # nested, or paused by the caller
            return fn(*args, **kwargs)
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            gc.enable()
    return wrapper
