"""The block-storage inventory: SQLAlchemy models, Alembic migrations, repository functions.

Knows nothing of drivers or Temporal; activities call the repository functions.
"""
