"""volumes: an index for the newest-first listing

`list` (and the REST volume listing) pages with ORDER BY created_at DESC, id DESC; without
an index PostgreSQL sorted the whole table for every page (2.9-11.8x slower at 100,000 rows
than at 1,000, bench/listing.py).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_volumes_created_at", "volumes", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_volumes_created_at", table_name="volumes")
