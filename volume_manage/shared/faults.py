"""Fault injection for tests and chaos drills: fail or delay a named step.

A worker started with faults (tests, or `worker.py --fault`) consults its plan at the start
of each step; production workers have an empty plan. The system under test stays real:
the same Temporal server, database and drivers, only a step is made to fail on purpose.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


class InjectedFault(Exception):
    """A failure injected on purpose; `retryable` says whether a retry may succeed."""

    def __init__(self, step: str, retryable: bool) -> None:
        self.step = step
        self.retryable = retryable
        kind = "transient" if retryable else "permanent"
        super().__init__(f"injected {kind} fault at step {step!r}")


@dataclass
class Fault:
    step: str
    times: int = 1  # fail this many times, then succeed; -1 fails every time
    retryable: bool = True
    delay_s: float = 0.0  # sleep before the step (delays never count as failures)

    @classmethod
    def parse(cls, text: str) -> Fault:
        """`step[:times[:permanent]]` or `step:delay=SECONDS`, as given to worker.py --fault."""
        step, *rest = text.split(":")
        fault = cls(step=step)
        for part in rest:
            if part.startswith("delay="):
                fault.delay_s, fault.times = float(part.removeprefix("delay=")), 0
            elif part == "permanent":
                fault.retryable = False
            else:
                fault.times = int(part)
        return fault


@dataclass
class FaultPlan:
    faults: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def check(self, step: str) -> None:
        """Delay or fail `step` if the plan says so; a no-op for an empty plan."""
        for fault in self.faults:
            if fault.step != step:
                continue
            if fault.delay_s:
                time.sleep(fault.delay_s)
            with self._lock:
                if fault.times == 0:
                    continue
                if fault.times > 0:
                    fault.times -= 1
            raise InjectedFault(step, fault.retryable)


NO_FAULTS = FaultPlan()
