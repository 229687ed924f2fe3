"""Settings read from the environment, with defaults that run the demo on one machine."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = PROJECT_ROOT / "data"


def default_database_url() -> str:
    """A SQLite file in the local data folder; PostgreSQL via DATABASE_URL."""
    return f"sqlite:///{DEFAULT_DATA_DIR / 'inventory.db'}"


@dataclass(frozen=True)
class Settings:
    temporal_address: str
    temporal_namespace: str
    database_url: str
    api_task_queue: str
    service_down_time_s: int
    # Cinder's notifications (volume_manage/notifications): an oslo.messaging transport URL
    # such as rabbit://user:pass@host:5672/; None (the default) sends none and costs nothing.
    transport_url: str | None = None
    # The notification topic (Cinder's [oslo_messaging_notifications] topics).
    notification_topic: str = "notifications"

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """The environment's settings (or the defaults); an override that is given, neither
        None nor "", wins, as a command-line flag wins over its environment variable."""
        settings = cls(
            temporal_address=os.environ.get("TEMPORAL_ADDRESS", "localhost:7233"),
            temporal_namespace=os.environ.get("TEMPORAL_NAMESPACE", "default"),
            database_url=os.environ.get("DATABASE_URL") or default_database_url(),
            api_task_queue=os.environ.get("VOLUME_API_TASK_QUEUE", "volume-api"),
            service_down_time_s=int(os.environ.get("SERVICE_DOWN_TIME", "60")),
            transport_url=os.environ.get("VOLUME_MANAGE_TRANSPORT_URL") or None,
            notification_topic=os.environ.get("VOLUME_MANAGE_NOTIFICATION_TOPIC")
            or "notifications",
        )
        given = {name: value for name, value in overrides.items() if value not in (None, "")}
        return dataclasses.replace(settings, **given)
