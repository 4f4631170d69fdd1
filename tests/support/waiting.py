"""Waiting for something to become true, with a deadline and a message that says what did not happen."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, what: str | Callable[[], str], poll: float = 0.05) -> T:
    """Return ``predicate()``'s first true value; fail the test after ``timeout`` seconds, saying ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what() if callable(what) else what}")
        time.sleep(poll)


async def until(
    predicate: Callable[[], T | Awaitable[T]], timeout: float, what: str | Callable[[], str], poll: float = 0.05
) -> T:
    """:func:`wait_until` for coroutines: the loop keeps running while it waits.

    ``predicate`` may be a coroutine function (``lambda: c.prop("State")`` style checks on the bus): what it
    returns is awaited before it is judged.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what() if callable(what) else what}")
        await asyncio.sleep(poll)
