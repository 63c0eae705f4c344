"""The process gate: a suspect job waits for the jobs inside and keeps new ones out, a waiting
one does not count as running, a cancelled one stops waiting, and a hung job wedges nobody."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from models.batching import InFlight
from models.isolation import ProcessGate

# How long a job that must wait is watched for not getting in (a short, negative wait).
STILL_OUT = 0.3


class Visitor:
    """A job on its own thread: it enters the gate and stays inside until let go."""

    def __init__(
        self,
        gate: ProcessGate,
        exclusive: bool,
        still_wanted: Callable[[], bool] = lambda: True,
        check_every_s: float = 10.0,
    ) -> None:
        self.inside = threading.Event()
        self.gave_up = threading.Event()
        self._go = threading.Event()
        self._thread = threading.Thread(
            target=self._visit, args=(gate, exclusive, still_wanted, check_every_s), daemon=True
        )
        self._thread.start()

    def _visit(
        self,
        gate: ProcessGate,
        exclusive: bool,
        still_wanted: Callable[[], bool],
        check_every_s: float,
    ) -> None:
        with gate.entered(exclusive, still_wanted, check_every_s) as entered:
            if not entered:
                self.gave_up.set()
                return
            self.inside.set()
            self._go.wait(10)

    def leave(self) -> None:
        """Let it go and wait until it has left."""
        self._go.set()
        self._thread.join(5)
        assert not self._thread.is_alive()


def enabled_gate(stuck_after_s: float = 60.0) -> tuple[ProcessGate, InFlight]:
    running = InFlight()
    gate = ProcessGate(running)
    gate.enable(stuck_after_s)
    return gate, running


def test_an_exclusive_entry_waits_until_the_shared_ones_have_left() -> None:
    gate, running = enabled_gate()
    first, second = Visitor(gate, False), Visitor(gate, False)
    assert first.inside.wait(2) and second.inside.wait(2)  # shared entries share
    suspect = Visitor(gate, True)
    assert not suspect.inside.wait(STILL_OUT)
    assert running.count == 2  # waiting at the gate is not running: no batch waits for it
    first.leave()
    assert not suspect.inside.wait(STILL_OUT)
    second.leave()
    assert suspect.inside.wait(2)
    assert running.count == 1
    suspect.leave()
    assert running.count == 0


def test_a_shared_entry_waits_behind_a_waiting_exclusive_one() -> None:
    gate, _ = enabled_gate()
    running = Visitor(gate, False)
    assert running.inside.wait(2)
    suspect = Visitor(gate, True)
    time.sleep(0.1)  # the suspect waits now
    newcomer = Visitor(gate, False)
    assert not newcomer.inside.wait(STILL_OUT)  # it would otherwise starve the suspect
    running.leave()
    assert suspect.inside.wait(2)
    assert not newcomer.inside.wait(STILL_OUT)  # nobody beside the suspect
    suspect.leave()
    assert newcomer.inside.wait(2)
    newcomer.leave()


def test_a_cancelled_job_stops_waiting_and_lets_the_others_in() -> None:
    gate, running = enabled_gate()
    inside = Visitor(gate, False)
    assert inside.inside.wait(2)
    wanted = threading.Event()
    wanted.set()
    suspect = Visitor(gate, True, still_wanted=wanted.is_set, check_every_s=0.05)
    time.sleep(0.1)
    newcomer = Visitor(gate, False)
    assert not newcomer.inside.wait(STILL_OUT)
    wanted.clear()  # the job is cancelled while it waits
    assert suspect.gave_up.wait(2) and not suspect.inside.is_set()
    assert newcomer.inside.wait(2)
    assert running.count == 2
    inside.leave()
    newcomer.leave()


def test_a_job_inside_past_the_hard_limit_keeps_nobody_out() -> None:
    gate, _ = enabled_gate(stuck_after_s=0.5)
    hung = Visitor(gate, False)  # hung in native code: it never leaves on its own
    assert hung.inside.wait(2)
    started = time.monotonic()
    suspect = Visitor(gate, True)
    assert suspect.inside.wait(3)
    assert time.monotonic() - started >= 0.4
    suspect.leave()
    hung.leave()


def test_a_disabled_gate_lets_everyone_in_at_once() -> None:
    running = InFlight()
    gate = ProcessGate(running)  # a prefork worker: one job per process
    visitors = [Visitor(gate, exclusive) for exclusive in (True, False, True)]
    assert all(visitor.inside.wait(2) for visitor in visitors)
    assert running.count == 3
    for visitor in visitors:
        visitor.leave()
    assert running.count == 0
