"""Fault injection for tests and chaos drills: fail or delay a named step.

A worker started with a plan (tests' `Stack.fail`, or `worker.py --fault`) checks it before
every activity and every driver call, by the step's name (the activity's, or the driver
method's); activities and drivers themselves know nothing of it (see activities/faults.py).
Production workers have no plan. The system under test stays real: the same Temporal
server, database and drivers, only a step is made to fail on purpose.
"""

from __future__ import annotations

import asyncio
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

    @classmethod
    def parse(cls, texts: list[str]) -> FaultPlan:
        """The plan of `worker.py --fault TEXT …` (see Fault.parse)."""
        return cls([Fault.parse(text) for text in texts])

    def check(self, step: str) -> None:
        """Delay or fail `step` if the plan says so; a no-op for an empty plan. Blocks the
        calling thread while it delays: for steps that run in a thread."""
        for fault in self._for(step):
            if fault.delay_s:
                time.sleep(fault.delay_s)
            self._trip(fault)

    async def check_async(self, step: str) -> None:
        """`check` for steps that run on the event loop: a delay must not block it."""
        for fault in self._for(step):
            if fault.delay_s:
                await asyncio.sleep(fault.delay_s)
            self._trip(fault)

    def _for(self, step: str) -> list[Fault]:
        return [fault for fault in self.faults if fault.step == step]

    def _trip(self, fault: Fault) -> None:
        """Raise the fault unless it has failed as often as it should."""
        with self._lock:
            if fault.times == 0:
                return
            if fault.times > 0:
                fault.times -= 1
        raise InjectedFault(fault.step, fault.retryable)
