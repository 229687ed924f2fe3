"""A fake driver whose rename waits until the test releases it: a blocked driver step that
lasts as long as the test needs, however loaded the machine is."""

from __future__ import annotations

import dataclasses
import threading

from volume_manage.drivers.fake import FakeDriver
from volume_manage.shared.types import Adopted

HOLD_LIMIT_S = 120.0  # how long the held step waits at most for the test to release it


@dataclasses.dataclass
class HeldDriver(FakeDriver):
    release: threading.Event = dataclasses.field(default_factory=threading.Event)

    def manage_existing(self, volume_id: str, ref: dict[str, str]) -> Adopted:
        self.release.wait(timeout=HOLD_LIMIT_S)
        return super().manage_existing(volume_id, ref)
