"""Bring an inventory database to the newest schema: `python -m inventory.migrate [URL]`."""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config

from core.config import Settings
from inventory.db import get_engine

ALEMBIC_INI = Path(__file__).with_name("alembic.ini")


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision` (idempotent: a migrated database stays as it is)."""
    config = Config(str(ALEMBIC_INI))
    with get_engine(url).connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        connection.commit()


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else Settings.from_env().database_url
    upgrade(target)
    print("inventory schema is up to date")
