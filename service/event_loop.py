"""The event loop every long-running soctriage command runs on: uvloop where it is installed.

A busy worker spends a large share of its CPU in the event loop itself (scheduling hundreds of graph runs, their
sockets and thread hand-offs); uvloop does that work in C. Without it (Windows) the standard loop is used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the fastest loop available."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(main)
