"""Several borderline posts per provider call: gather posts into groups, decide each group once.

The cached policy prefix and the instructions are paid once per call, so a call of k posts costs
much less per post than k calls (measured in ``modstream bench frontier --designs``). The price is
latency: a post waits for company. A group goes out as soon as one of these holds:

* it has ``size`` posts;
* its first post has waited ``linger_s``;
* some post in it would otherwise start its call with less than ``expected_call_s`` of its
  budget left (a late post never waits for company);
* a post arrives with the id of a post already in it (a duplicate or a re-delivery): a post id
  appears at most once per call, since each verdict is found by it.

Each group is decided by one ``decide_group`` coroutine (the decider's), which returns one outcome
per post, in order. Whatever happens to a group, every post waiting on it gets an answer or the
group's exception: nobody waits forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from pipeline.core.deadline import Deadline
from pipeline.frontier.outcomes import Outcome
from schemas import BorderlineRequest


@dataclass(frozen=True, slots=True)
class Pending:
    """One post waiting for its group's call."""

    request: BorderlineRequest
    deadline: Deadline


DecideGroup = Callable[[Sequence[Pending]], Awaitable[list[Outcome]]]


@dataclass(slots=True)
class _Waiter:
    pending: Pending
    start_by: float  # clock time by which its group's call must start
    done: asyncio.Future[Outcome]


class PostGrouper:
    """Gathers posts into groups of at most ``size`` and decides each group with one call."""

    def __init__(
        self,
        decide_group: DecideGroup,
        *,
        size: int,
        linger_s: float,
        expected_call_s: float,
        clock: Callable[[], float],
    ) -> None:
        if size < 2:
            raise ValueError(f"a group needs at least 2 posts, got size={size}")
        self._decide_group = decide_group
        self._size = size
        self._linger_s = max(linger_s, 0.0)
        self._expected_call_s = expected_call_s
        self._clock = clock
        self._waiting: list[_Waiter] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def waiting(self) -> int:
        """Posts gathered for a call that has not started yet."""
        return len(self._waiting)

    async def submit(self, request: BorderlineRequest, deadline: Deadline) -> Outcome:
        """Wait for this post's group to be decided; returns its outcome."""
        loop = asyncio.get_running_loop()
        if any(w.pending.request.post_id == request.post_id for w in self._waiting):
            # A post id appears once per call (its verdict is found by it): a duplicate or a
            # re-delivery of a waiting post sends the waiting group first.
            self._send(len(self._waiting))
        now = self._clock()
        slack = deadline.work_remaining(now) - self._expected_call_s
        waiter = _Waiter(
            Pending(request, deadline),
            start_by=now + max(0.0, min(self._linger_s, slack)),
            done=loop.create_future(),
        )
        self._waiting.append(waiter)
        self._schedule(loop)
        return await waiter.done

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        """Send full groups and groups due now; arm the timer for the next one due."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while len(self._waiting) >= self._size:
            self._send(self._size)
        if not self._waiting:
            return
        due = min(w.start_by for w in self._waiting) - self._clock()
        if due <= 0:
            self._send(len(self._waiting))
        else:
            self._timer = loop.call_later(due, self._schedule, loop)

    def _send(self, count: int) -> None:
        group, self._waiting = self._waiting[:count], self._waiting[count:]
        task = asyncio.get_running_loop().create_task(self._run(group))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, group: list[_Waiter]) -> None:
        try:
            outcomes = await self._decide_group([w.pending for w in group])
            if len(outcomes) != len(group):  # a broken decider must not leave posts waiting
                raise RuntimeError(f"{len(outcomes)} outcomes for a group of {len(group)} posts")
        except BaseException as exc:
            for w in group:
                if not w.done.done():
                    if isinstance(exc, asyncio.CancelledError):
                        w.done.cancel()
                    else:
                        w.done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for w, outcome in zip(group, outcomes, strict=True):
            if not w.done.done():  # its waiter may have been cancelled (shutdown)
                w.done.set_result(outcome)

    async def close(self) -> None:
        """Cancel the timer and the calls in flight (shutdown); their posts are cancelled."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for w in self._waiting:
            w.done.cancel()
        self._waiting.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
