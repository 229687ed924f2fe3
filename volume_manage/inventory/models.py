"""Tables of the inventory. Changes go through a new Alembic migration in `migrations/`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time stored here is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    # MySQL's plain DATETIME has no fraction of a second (migration 0004 makes it DATETIME(6)).
    type_annotation_map = {
        dict[str, Any]: JSON,
        datetime: DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"),
    }


class VolumeType(Base):
    __tablename__ = "volume_types"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str | None] = mapped_column(String(255))
    extra_specs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    is_public: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Service(Base):
    """A backend worker (or the API worker) and what it last reported about itself."""

    __tablename__ = "services"
    __table_args__ = (UniqueConstraint("host", "binary", name="uq_services_host_binary"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(255))
    binary: Mapped[str] = mapped_column(String(64))
    cluster: Mapped[str | None] = mapped_column(String(255))
    availability_zone: Mapped[str] = mapped_column(String(255), default="nova")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seen: Mapped[datetime | None] = mapped_column()
    capabilities: Mapped[dict[str, Any]] = mapped_column(default=dict)
    total_capacity_gb: Mapped[float] = mapped_column(Float, default=0.0)
    free_capacity_gb: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Volume(Base):
    """A volume entry. Soft-deleted rows stay for the record; live rows have deleted=False."""

    __tablename__ = "volumes"
    __table_args__ = (
        # One adoption per backend object, enforced where races cannot slip through. MySQL
        # has no partial index: there it is over (backend, live_backend_ref_key), a generated
        # column NULL for deleted rows that only the database knows (migration 0004).
        Index(
            "uq_volumes_live_backend_ref",
            "backend",
            "backend_ref_key",
            unique=True,
            sqlite_where=text("NOT deleted"),
            postgresql_where=text("NOT deleted"),
        ),
        Index("ix_volumes_project_status", "project_id", "status"),
        Index("ix_volumes_host", "host"),
        Index("ix_volumes_created_at", "created_at", "id"),  # newest-first listing
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[str] = mapped_column(String(255))
    host: Mapped[str | None] = mapped_column(String(255))
    cluster: Mapped[str | None] = mapped_column(String(255))
    backend: Mapped[str] = mapped_column(String(255))
    availability_zone: Mapped[str] = mapped_column(String(255))
    volume_type_id: Mapped[str] = mapped_column(ForeignKey("volume_types.id"))
    name: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(32))
    attach_status: Mapped[str] = mapped_column(String(32), default="detached")
    bootable: Mapped[bool] = mapped_column(Boolean, default=False)
    provider_id: Mapped[str | None] = mapped_column(String(255))
    provider_location: Mapped[str | None] = mapped_column(String(1024))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    backend_ref: Mapped[dict[str, Any]] = mapped_column(default=dict)
    backend_ref_key: Mapped[str] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    workflow_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    launched_at: Mapped[datetime | None] = mapped_column()
    deleted_at: Mapped[datetime | None] = mapped_column()
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class Snapshot(Base):
    """A snapshot entry: an existing snapshot of a live volume's object, adopted. Soft-deleted
    rows stay for the record. The columns the adoption core reads (`activities/adoption.py`:
    status, size, host, provider fields, launched_at, error, deleted) are a volume's."""

    __tablename__ = "snapshots"
    __table_args__ = (
        # One live entry per snapshot: a snapshot's ref names it on its volume's object
        # (Cinder's RBD ref is the snap's name on the volume's image), so the rule is over
        # (volume, ref). MySQL has no partial index (migration 0005 says what it does).
        Index(
            "uq_snapshots_live_volume_ref",
            "volume_id",
            "backend_ref_key",
            unique=True,
            sqlite_where=text("NOT deleted"),
            postgresql_where=text("NOT deleted"),
        ),
        Index("ix_snapshots_volume", "volume_id"),
        Index("ix_snapshots_project_status", "project_id", "status"),
        Index("ix_snapshots_created_at", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    volume_id: Mapped[str] = mapped_column(ForeignKey("volumes.id"))
    project_id: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[str] = mapped_column(String(255))
    backend: Mapped[str] = mapped_column(String(255))  # the volume's: its task queue
    host: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    volume_size: Mapped[int] = mapped_column(BigInteger, default=0)  # Cinder's, at request
    status: Mapped[str] = mapped_column(String(32))
    provider_id: Mapped[str | None] = mapped_column(String(255))
    provider_location: Mapped[str | None] = mapped_column(String(1024))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    backend_ref: Mapped[dict[str, Any]] = mapped_column(default=dict)
    backend_ref_key: Mapped[str] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    workflow_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    launched_at: Mapped[datetime | None] = mapped_column()
    deleted_at: Mapped[datetime | None] = mapped_column()
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class Event(Base):
    """The audit trail: what happened to which volume, and which workflow did it."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    volume_id: Mapped[str | None] = mapped_column(String(36), index=True)
    event_type: Mapped[str] = mapped_column(String(64))
    workflow_id: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class QuotaClass(Base):
    """Default limits for every project (Cinder's `default` quota class); -1 is unlimited."""

    __tablename__ = "quota_classes"

    resource: Mapped[str] = mapped_column(String(255), primary_key=True)
    hard_limit: Mapped[int] = mapped_column(BigInteger)


class Quota(Base):
    """A project's own limit for one resource, overriding the default class."""

    __tablename__ = "quotas"

    project_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    resource: Mapped[str] = mapped_column(String(255), primary_key=True)
    hard_limit: Mapped[int] = mapped_column(BigInteger)


class QuotaUsage(Base):
    """What a project uses (`in_use`) and has reserved for adoptions under way."""

    __tablename__ = "quota_usages"

    project_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    resource: Mapped[str] = mapped_column(String(255), primary_key=True)
    in_use: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Reservation(Base):
    """One resource delta held for one volume: reserved -> committed -> released,
    or reserved -> rolled_back."""

    __tablename__ = "reservations"
    __table_args__ = (Index("ix_reservations_volume", "volume_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    volume_id: Mapped[str] = mapped_column(String(36))
    project_id: Mapped[str] = mapped_column(String(255))
    resource: Mapped[str] = mapped_column(String(255))
    delta: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    workflow_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def table_of(model: type[Base]) -> Table:
    """A model's Core table: for statements over many rows that need no ORM objects (a
    batch step's hundreds of rows cost more as objects than as the step's SQL)."""
    return cast(Table, model.__table__)
