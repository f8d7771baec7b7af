"""Run a coroutine eagerly: up to its first suspension in the caller, the rest in a task.

Python 3.12 does this with `asyncio.eager_task_factory`; this project supports 3.11,
so the fan-out uses this small equivalent. Sending a websocket message through
Starlette and uvicorn does not suspend unless the transport's write buffer is
full. Sent eagerly, a message to an idle connection costs one function call
instead of a task wake-up, which is most of the fan-out's cost per watcher.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def start_eagerly(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T] | None:
    """Step `coro` now; return None when it finished, else a task that finishes it.

    An exception raised before the first suspension propagates to the caller. One
    raised later ends up in the returned task, as with `asyncio.create_task`.
    """
    try:
        awaited = coro.send(None)
    except StopIteration:
        return None
    task = asyncio.get_running_loop().create_task(_finish(coro, awaited))
    task.add_done_callback(functools.partial(_cancel_unstarted, coro, awaited))
    return task


def _cancel_unstarted(coro: Coroutine[Any, Any, Any], awaited: Any, task: asyncio.Task[Any]) -> None:
    """Deliver a cancellation that hit the task before its first step to `coro`.

    Such a cancellation ends `_finish` before its body runs, so `coro` would stay
    suspended until garbage collection. As with `Task.cancel`, the future it waits
    for is cancelled and CancelledError is raised in the coroutine where it is suspended.
    """
    if not task.cancelled() or inspect.getcoroutinestate(coro) != inspect.CORO_SUSPENDED:
        return
    if awaited is not None:
        awaited.cancel()
    try:
        coro.throw(asyncio.CancelledError())
    except (asyncio.CancelledError, StopIteration):
        return
    # It awaited something else after the cancellation. Nothing would resume it now.
    coro.close()


async def _finish(coro: Coroutine[Any, Any, T], awaited: Any) -> T:
    """Drive `coro` from its first suspension on, as a task's steps would."""
    while True:
        try:
            if awaited is None:
                await asyncio.sleep(0)  # a bare `yield`: give the loop one pass
            else:
                # The coroutine yielded a future (asyncio's protocol): resume it once the
                # future is done; its own `await` then reads the result or the error.
                awaited._asyncio_future_blocking = False
                await asyncio.wait((awaited,))
        except asyncio.CancelledError:
            # Cancel the future the coroutine waits for, as Task.cancel does, so
            # CancelledError is raised in the coroutine where it is suspended.
            if awaited is None or not awaited.cancel():
                try:
                    awaited = coro.throw(asyncio.CancelledError())
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]
                continue
        try:
            awaited = coro.send(None)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
