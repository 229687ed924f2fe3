"""snapshots: snapshot entries, and Cinder's default snapshot quota

Snapshots of adopted volumes (issue 17): one row per snapshot, soft-deleted like volumes, one
live entry per (volume, ref) by a partial unique index, and the quota class `snapshots` at
Cinder's default (10 per project; `gigabytes` is shared with volumes, as in Cinder).

Dialect-neutral. MySQL/MariaDB have no partial index: there the rule is a unique index over
(volume_id, live_backend_ref_key), a stored generated column NULL for deleted rows (as
0004_mysql does for volumes).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Times with microseconds on MySQL too (its plain DATETIME drops them).
TIME = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
LIVE_KEY = ("live_backend_ref_key VARCHAR(64) AS "
            "(CASE WHEN deleted THEN NULL ELSE backend_ref_key END) STORED")


def _on_mysql() -> bool:
    return op.get_bind().dialect.name in ("mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "snapshots",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("volume_id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("backend", sa.String(length=255), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("description", sa.String(length=255), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("volume_size", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("provider_id", sa.String(length=255), nullable=True),
        sa.Column("provider_location", sa.String(length=1024), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("backend_ref", sa.JSON(), nullable=False),
        sa.Column("backend_ref_key", sa.String(length=64), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("workflow_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("launched_at", TIME, nullable=True),
        sa.Column("deleted_at", TIME, nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["volume_id"], ["volumes.id"],
                                name="fk_snapshots_volume_id"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_snapshots_volume", "snapshots", ["volume_id"])
    op.create_index("ix_snapshots_project_status", "snapshots", ["project_id", "status"])
    op.create_index("ix_snapshots_created_at", "snapshots", ["created_at", "id"])
    if _on_mysql():
        op.execute(f"ALTER TABLE snapshots ADD COLUMN {LIVE_KEY}")
        op.create_index("uq_snapshots_live_volume_ref", "snapshots",
                        ["volume_id", "live_backend_ref_key"], unique=True)
    else:
        op.create_index("uq_snapshots_live_volume_ref", "snapshots",
                        ["volume_id", "backend_ref_key"], unique=True,
                        sqlite_where=sa.text("NOT deleted"),
                        postgresql_where=sa.text("NOT deleted"))
    quota_classes = sa.table("quota_classes", sa.column("resource", sa.String),
                             sa.column("hard_limit", sa.BigInteger))
    # Cinder's default quota_snapshots; per-type snapshot quotas are unlimited by default.
    op.bulk_insert(quota_classes, [{"resource": "snapshots", "hard_limit": 10}])


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM quota_classes WHERE resource = 'snapshots'"))
    # Its indexes go with it (MySQL refuses to drop one its foreign key uses first).
    op.drop_table("snapshots")
