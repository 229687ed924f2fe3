"""MariaDB/MySQL: one live entry per backend object, exact text and microsecond times

Does nothing on SQLite and PostgreSQL. On MySQL:
- MySQL has no partial index, so 0001 made `uq_volumes_live_backend_ref` over every row: a
  soft-deleted entry would keep its object "managed" for ever. The rule becomes a unique
  index over (backend, live_backend_ref_key), a stored generated column that is the ref key
  for live rows and NULL for deleted ones (a unique index admits any number of NULLs).
- The database and its tables use utf8mb4_bin: the server's default collation compares
  case-insensitively and ignores trailing spaces, so "Vol-1" and "vol-1" would be one
  backend object and one volume type name; SQLite and PostgreSQL compare exactly.
- DATETIME columns get microseconds (DATETIME(6)); plain DATETIME drops them, and the
  listings page by created_at, id.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = ("events", "services", "volume_types", "volumes", "quota_classes", "quotas",
          "quota_usages", "reservations")
LIVE_KEY = ("live_backend_ref_key VARCHAR(64) AS "
            "(CASE WHEN deleted THEN NULL ELSE backend_ref_key END) STORED")


def _on_mysql() -> bool:
    return op.get_bind().dialect.name in ("mysql", "mariadb")


def upgrade() -> None:
    if not _on_mysql():
        return
    bind = op.get_bind()
    database = bind.exec_driver_sql("SELECT DATABASE()").scalar()
    op.drop_index("uq_volumes_live_backend_ref", table_name="volumes")
    op.execute(f"ALTER DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    inspector = sa.inspect(bind)
    op.execute("SET FOREIGN_KEY_CHECKS = 0")  # volumes.volume_type_id changes with its parent
    for table in TABLES:
        op.execute(f"ALTER TABLE `{table}` CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        for column in inspector.get_columns(table):
            if isinstance(column["type"], sa.DateTime):
                null = "NULL" if column["nullable"] else "NOT NULL"
                op.execute(f"ALTER TABLE `{table}` MODIFY `{column['name']}` DATETIME(6) {null}")
    op.execute("SET FOREIGN_KEY_CHECKS = 1")
    op.execute(f"ALTER TABLE volumes ADD COLUMN {LIVE_KEY}")
    op.create_index("uq_volumes_live_backend_ref", "volumes",
                    ["backend", "live_backend_ref_key"], unique=True)


def downgrade() -> None:
    if not _on_mysql():
        return
    op.drop_index("uq_volumes_live_backend_ref", table_name="volumes")
    op.drop_column("volumes", "live_backend_ref_key")
    op.create_index("uq_volumes_live_backend_ref", "volumes", ["backend", "backend_ref_key"],
                    unique=True)
