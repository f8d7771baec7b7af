"""Send the Lua script calls issued during one event-loop pass as one pipeline.

Under load, most of a bid's cost is the Redis client's round trip. Callers that
await `ScriptBatcher.run` during the same pass of the event loop share one
pipeline (no MULTI), so N concurrent bids cost one write and one read on the
socket instead of N. Each call still runs as its own atomic script in Redis.

Failure: when the pipeline fails (connection lost, timeout), every call in it
raises, and the callers must report the action as not confirmed. A call whose
reply was lost may still have been applied; the client id makes the retry safe.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, Sequence

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError


class Script:
    """A Lua script known by its SHA1, loaded on first use and after a Redis restart."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


class ScriptBatcher:
    def __init__(self, redis: Redis, *, max_batch: int = 512) -> None:
        self._redis = redis
        self._max_batch = max_batch
        self._pending: list[tuple[Script, Sequence[str], Sequence[Any], asyncio.Future[Any]]] = []
        self._flush_scheduled = False
        # The event loop keeps only weak references to tasks; these keep sends alive.
        self._sending: set[asyncio.Task[None]] = set()

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((script, keys, args, future))
        if len(self._pending) >= self._max_batch:
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(
        self, batch: list[tuple[Script, Sequence[str], Sequence[Any], asyncio.Future[Any]]]
    ) -> None:
        try:
            results = await self._execute(batch)
        except BaseException as error:  # noqa: BLE001 - every waiter must hear of it
            for *_, future in batch:
                if not future.done():
                    future.set_exception(error if isinstance(error, Exception) else ConnectionError(str(error)))
            if not isinstance(error, Exception):
                raise
            return
        for (*_, future), result in zip(batch, results):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _execute(
        self, batch: list[tuple[Script, Sequence[str], Sequence[Any], asyncio.Future[Any]]]
    ) -> list[Any]:
        results = await self._pipeline(batch)
        missing = [i for i, result in enumerate(results) if _is_noscript(result)]
        if not missing:
            return results
        # Redis restarted or its scripts were flushed. NOSCRIPT means those calls did
        # not run, so only they are sent again, after loading their scripts; the calls
        # that did run are never sent twice.
        for script in {batch[i][0].sha: batch[i][0] for i in missing}.values():
            await self._redis.script_load(script.source)
        retried = await self._pipeline([batch[i] for i in missing])
        for i, result in zip(missing, retried):
            results[i] = result
        return results

    async def _pipeline(
        self, batch: list[tuple[Script, Sequence[str], Sequence[Any], asyncio.Future[Any]]]
    ) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        for script, keys, args, _ in batch:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))


def _is_noscript(result: Any) -> bool:
    return isinstance(result, NoScriptError) or (
        isinstance(result, ResponseError) and str(result).startswith("NOSCRIPT")
    )
