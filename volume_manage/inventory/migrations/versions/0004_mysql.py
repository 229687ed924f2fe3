"""MariaDB/MySQL: one live entry per backend object, exact text and microsecond times

Does nothing on SQLite and PostgreSQL. On MySQL:
- MySQL has no partial index, so 0001 made `uq_volumes_live_backend_ref` over every row: a
  soft-deleted entry would keep its object "managed" for ever. The rule becomes a unique
  index over (backend, live_backend_ref_key), a stored generated column that is the ref key
  for live rows and NULL for deleted ones (a unique index admits any number of NULLs).
- The database and its tables use a binary collation without padding (MariaDB's
  utf8mb4_nopad_bin, MySQL 8's utf8mb4_0900_bin): the server's default compares
  case-insensitively and ignores trailing spaces (so does utf8mb4_bin, a PAD SPACE one),
  so "gold" and "Gold " would be one volume type name; SQLite and PostgreSQL compare exactly.
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
EXACT = ("utf8mb4_nopad_bin", "utf8mb4_0900_bin")  # MariaDB 10.2+, MySQL 8
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
    collation = bind.execute(sa.text(
        "SELECT collation_name FROM information_schema.collations"
        " WHERE collation_name IN :names ORDER BY collation_name DESC LIMIT 1"
    ).bindparams(sa.bindparam("names", expanding=True)), {"names": list(EXACT)}).scalar()
    if collation is None:
        raise RuntimeError(f"the server has none of the collations {', '.join(EXACT)}")
    op.execute(f"ALTER DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE {collation}")
    inspector = sa.inspect(bind)
    # A column a foreign key joins cannot change its collation: drop the keys, put them back.
    foreign_keys = [(table, key) for table in TABLES for key in inspector.get_foreign_keys(table)
                    if key["name"]]
    for table, key in foreign_keys:
        op.drop_constraint(str(key["name"]), table, type_="foreignkey")
    for table in TABLES:
        op.execute(f"ALTER TABLE `{table}` CONVERT TO CHARACTER SET utf8mb4 COLLATE {collation}")
        for column in inspector.get_columns(table):
            if isinstance(column["type"], sa.DateTime):
                null = "NULL" if column["nullable"] else "NOT NULL"
                op.execute(f"ALTER TABLE `{table}` MODIFY `{column['name']}` DATETIME(6) {null}")
    for table, key in foreign_keys:
        op.create_foreign_key(key["name"], table, key["referred_table"],
                              key["constrained_columns"], key["referred_columns"])
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
