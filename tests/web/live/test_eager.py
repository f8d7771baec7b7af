"""`start_eagerly`: a coroutine runs in the caller until it suspends, then in a task."""

from __future__ import annotations

import asyncio

import pytest

from web.live.eager import start_eagerly


async def test_coroutine_that_never_suspends_finishes_in_the_call() -> None:
    done: list[str] = []

    async def send() -> None:
        done.append("sent")

    assert start_eagerly(send()) is None
    assert done == ["sent"]


async def test_error_before_the_first_suspension_reaches_the_caller() -> None:
    async def send() -> None:
        raise OSError("socket gone")

    with pytest.raises(OSError, match="socket gone"):
        start_eagerly(send())


async def test_suspended_coroutine_finishes_in_a_task() -> None:
    writable = asyncio.Event()
    steps: list[str] = []

    async def send() -> str:
        steps.append("started")
        await writable.wait()
        steps.append("written")
        await asyncio.sleep(0)  # a bare yield on the way
        return "ok"

    task = start_eagerly(send())
    assert task is not None
    assert steps == ["started"]
    await asyncio.sleep(0)
    assert steps == ["started"]  # still waiting for the event
    writable.set()
    assert await task == "ok"
    assert steps == ["started", "written"]


async def test_error_after_suspension_ends_up_in_the_task() -> None:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def send() -> None:
        await future

    task = start_eagerly(send())
    assert task is not None
    future.set_exception(ConnectionResetError("peer closed"))
    with pytest.raises(ConnectionResetError):
        await task


async def test_cancelling_the_task_cancels_the_waiting_coroutine() -> None:
    writable = asyncio.Event()
    cleaned_up: list[bool] = []

    async def send() -> None:
        try:
            await writable.wait()
        finally:
            cleaned_up.append(True)

    task = start_eagerly(send())
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned_up == [True]
    assert not writable._waiters  # Event.wait removed its waiter


async def test_coroutine_may_swallow_a_cancellation_and_return() -> None:
    writable = asyncio.Event()

    async def send() -> str:
        try:
            await writable.wait()
        except asyncio.CancelledError:
            return "gave up"
        return "sent"

    task = start_eagerly(send())
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    assert await task == "gave up"


async def test_cancel_before_first_step_reaches_the_coroutine() -> None:
    """A task cancelled in the pass that started it still delivers CancelledError to the coroutine."""
    writable = asyncio.Event()
    seen: list[str] = []

    async def send() -> str:
        try:
            await writable.wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        return "sent"

    task = start_eagerly(send())
    assert task is not None
    task.cancel()  # no await in between: the task has not taken its first step
    with pytest.raises(asyncio.CancelledError):
        await task

    assert seen == ["cancelled"]
    assert not writable._waiters
