"""Send the Redis calls issued during one event-loop pass as one pipeline.

Under load, most of a bid's cost is the Redis client's round trip. Callers that
await `ScriptBatcher.run` (a Lua script) or `ScriptBatcher.command` (a plain
command such as GETEX) during the same pass of the event loop share one pipeline
(no MULTI). So N concurrent bids cost one write and one read on the socket instead
of N. Each script still runs atomically in Redis, and each command on its own.

A pass's calls go out in pipelines of at most `max_batch` (16 by default), each
on its own connection. With one pipeline per pass, the web process and Redis took
turns: the process waited while Redis ran the whole batch, and Redis waited while
the process handled the replies. Smaller pipelines let them overlap: in
`bench/` (100 websocket bidders, 2 cores) 16 gave about 1.3 times the bids/s of
512 and a lower p99.

Failure: when the pipeline fails (connection lost, timeout), every call in it
raises, and the callers must report the action as not confirmed. A call whose
reply was lost may still have been applied; the client id makes the retry safe.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Any, Sequence

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError


class Script:
    """A Lua script known by its SHA1, loaded on first use and after a Redis restart."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


@dataclass(frozen=True)
class _Call:
    """One queued call: a script with its keys and arguments, or a plain command (`script` None)."""

    script: Script | None
    keys: Sequence[str]
    args: Sequence[Any]
    future: asyncio.Future[Any]


class ScriptBatcher:
    def __init__(self, redis: Redis, *, max_batch: int = 16) -> None:
        self._redis = redis
        self._max_batch = max_batch
        self._pending: list[_Call] = []
        self._flush_scheduled = False
        # The event loop keeps only weak references to tasks; these keep sends alive.
        self._sending: set[asyncio.Task[None]] = set()

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run `script` with `keys` and `args` in the next pipeline; return its reply."""
        return await self.submit(script, keys, args)

    async def command(self, *args: Any) -> Any:
        """Send one plain command (for example "GETEX", key, "EX", 60) in the next pipeline.

        The reply passes through redis-py's response callback for that command name,
        as `Redis.execute_command` would apply it.
        """
        return await self.submit(None, (), args)

    def submit(self, script: Script | None, keys: Sequence[str], args: Sequence[Any]) -> asyncio.Future[Any]:
        """Queue a script call (or, with `script` None, the command `args`) and return its reply's future.

        Calls submitted before the caller awaits go out in the same event-loop pass,
        so independent calls share the round trip.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append(_Call(script, keys, args, future))
        if len(self._pending) >= self._max_batch:
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Call]) -> None:
        try:
            results = await self._execute(batch)
        except BaseException as error:  # noqa: BLE001 - every waiter must hear of it
            for call in batch:
                if not call.future.done():
                    call.future.set_exception(error if isinstance(error, Exception) else ConnectionError(str(error)))
            if not isinstance(error, Exception):
                raise
            return
        for call, result in zip(batch, results):
            if call.future.done():
                continue
            if isinstance(result, Exception):
                call.future.set_exception(result)
            else:
                call.future.set_result(result)

    async def _execute(self, batch: list[_Call]) -> list[Any]:
        results = await self._pipeline(batch)
        missing = [i for i, result in enumerate(results) if batch[i].script is not None and _is_noscript(result)]
        if not missing:
            return results
        # Redis restarted or its scripts were flushed. NOSCRIPT means those calls did
        # not run, so only they are sent again, after loading their scripts; the calls
        # that did run are never sent twice.
        scripts = {call.script.sha: call.script for call in (batch[i] for i in missing) if call.script is not None}
        for script in scripts.values():
            await self._redis.script_load(script.source)
        retried = await self._pipeline([batch[i] for i in missing])
        for i, result in zip(missing, retried):
            results[i] = result
        return results

    async def _pipeline(self, batch: list[_Call]) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        for call in batch:
            if call.script is None:
                pipe.execute_command(*call.args)
            else:
                pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
        return list(await pipe.execute(raise_on_error=False))


def _is_noscript(result: Any) -> bool:
    return isinstance(result, NoScriptError) or (
        isinstance(result, ResponseError) and str(result).startswith("NOSCRIPT")
    )
