"""The process gate: a job that may have killed its process before runs alone in it.

A threads-pool worker (a batching gpu worker) runs many jobs in one process, so an input that
crashes the process (a segfault or abort in native code, the OOM killer) kills every job running
beside it, and each of them loses an attempt. Without a gate the lost worker's messages come back
together, run together again, and the poison takes its batch-mates down with it until all of
them have used up MAX_ATTEMPTS.

The gate is a reader/writer lock over the process's jobs. A first delivery enters **shared**, as
every job did before. A delivery that may have killed a process already (redelivered, or its job
was claimed before) enters **exclusive**: it waits until the jobs inside have left and keeps new
ones out meanwhile (a waiting exclusive entry goes before any shared one). A job enters before
it claims its job (the claim counts the attempt), so the jobs waiting at the gate when the
process dies lose nothing: only the job inside does.

A job inside for longer than ``stuck_after_s`` (the hard time limit) is presumed hung in native
code (a job that reaches a progress report after its soft limit stops there): it no longer keeps
anyone out, so one hung thread cannot wedge the whole worker behind it.

In a prefork worker (one job per process) the gate stays disabled: nobody is exclusive, and a
shared entry never waits. The jobs inside are the jobs the batcher counts as running
(``jobs_in_flight``): a job waiting at the gate is not running, and no batch waits for it.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from models.batching import InFlight, jobs_in_flight


@dataclass(frozen=True)
class _Holder:
    """A job inside the gate: how it entered, and when."""

    exclusive: bool
    since: float  # monotonic


class ProcessGate:
    """Shared entry for first deliveries, exclusive entry for deliveries that may be poison."""

    def __init__(self, in_flight: InFlight = jobs_in_flight) -> None:
        self.enabled = False
        self.stuck_after_s = math.inf
        self._in_flight = in_flight
        self._changed = threading.Condition()
        self._inside: dict[int, _Holder] = {}
        self._exclusive_waiting = 0
        self._tokens = itertools.count()

    def enable(self, stuck_after_s: float) -> None:
        """Isolate suspect jobs in this process (a threads pool); a job inside longer than
        ``stuck_after_s`` is presumed hung and keeps nobody out."""
        self.stuck_after_s = stuck_after_s
        self.enabled = True

    def _live(self, now: float) -> list[_Holder]:
        return [h for h in self._inside.values() if now - h.since < self.stuck_after_s]

    def _may_enter(self, exclusive: bool, now: float) -> bool:
        live = self._live(now)
        if exclusive:
            return not live
        return self._exclusive_waiting == 0 and not any(h.exclusive for h in live)

    def _next_change(self, now: float) -> float:
        """Seconds until the next job inside is presumed hung (a wait must look again then)."""
        ends = [h.since + self.stuck_after_s - now for h in self._live(now)]
        return max(0.0, min(ends, default=math.inf))

    def _wait_for_entry(
        self, exclusive: bool, still_wanted: Callable[[], bool], check_every_s: float
    ) -> int | None:
        """Enter (a token) once allowed; None if ``still_wanted`` said no while waiting."""
        check_at = time.monotonic() + check_every_s
        with self._changed:
            if exclusive:
                self._exclusive_waiting += 1
            try:
                while not self._may_enter(exclusive, now := time.monotonic()):
                    if now >= check_at:
                        # Outside the lock: it talks to the database.
                        self._changed.release()
                        try:
                            wanted = still_wanted()
                        finally:
                            self._changed.acquire()
                        if not wanted:
                            return None
                        check_at = time.monotonic() + check_every_s
                        continue
                    self._changed.wait(min(check_at - now, self._next_change(now)))
                token = next(self._tokens)
                self._inside[token] = _Holder(exclusive, time.monotonic())
                return token
            finally:
                if exclusive:
                    self._exclusive_waiting -= 1
                    # Shared entries held back by this waiting one may go (if it gave up).
                    self._changed.notify_all()

    def _leave(self, token: int) -> None:
        with self._changed:
            del self._inside[token]
            self._changed.notify_all()

    @contextmanager
    def entered(
        self,
        exclusive: bool,
        still_wanted: Callable[[], bool] = lambda: True,
        check_every_s: float = 10.0,
    ) -> Iterator[bool]:
        """Inside the gate for the block: True once in, or False (not in) if ``still_wanted``,
        asked every ``check_every_s`` while waiting, answered no (the job was cancelled)."""
        token = self._wait_for_entry(exclusive and self.enabled, still_wanted, check_every_s)
        if token is None:
            yield False
            return
        self._in_flight.started()
        try:
            yield True
        finally:
            self._in_flight.ended()
            self._leave(token)


# This process's gate: enabled by a threads-pool worker's start-up (workers.batching).
process_gate = ProcessGate()
