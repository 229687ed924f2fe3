"""What a request names, looked up in the inventory: the live backend serving a host or
cluster, and the whole placement of a manage request (backend, zone, volume type).

One place for these rules: the API workflow's validation step is their authority, and the
SDK and REST API run the same checks before starting anything, so a request they would
refuse never starts a workflow.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from volume_manage.inventory import repository as repo
from volume_manage.inventory.models import Service
from volume_manage.shared import errors, events, naming, validation
from volume_manage.shared.errors import RequestError
from volume_manage.shared.types import ManageRequest, ManageSpec

DEFAULT_VOLUME_TYPE = "__DEFAULT__"


def serving_backend(
    session: Session, *, host: str | None = None, cluster: str | None = None,
    now: datetime, down_time: timedelta,
) -> tuple[Service, str]:
    """A live service for `host` (host@backend[#pool]) or `cluster` (name[@backend][#pool])
    and the backend whose task queue serves it (its cluster, else host@backend)."""
    if cluster is not None:
        name = naming.backend_of_host(cluster)
        if not validation.CLUSTER_PATTERN.match(name):
            raise RequestError("cluster", f"must look like 'cluster@backend', got {cluster!r}")
        services = repo.cluster_services(session, name)
        if not services:
            raise RequestError("cluster", f"Cluster '{name}' not found.", errors.HOST_NOT_FOUND)
        up = [s for s in services if repo.service_is_up(s, now, down_time)]
        if not up:
            raise RequestError("cluster", "Service is unavailable at this time.",
                               errors.SERVICE_UNAVAILABLE)
        return up[0], name
    if host is None or not validation.HOST_PATTERN.match(host):
        raise RequestError("host", f"must look like 'hostname@backend#pool', got {host!r}")
    backend = naming.backend_of_host(host)
    service = repo.get_backend_service(session, backend)
    if service is None:
        raise RequestError("host", f"Host '{backend}' not found.", errors.HOST_NOT_FOUND)
    if not repo.service_is_up(service, now, down_time):
        raise RequestError("host", "Service is unavailable at this time.",
                           errors.SERVICE_UNAVAILABLE)
    return service, service.cluster or backend


def resolve_manage_request(
    session: Session, request: ManageRequest, *, now: datetime, down_time: timedelta
) -> ManageSpec:
    """The placement of a field-checked request, or a RequestError naming the field."""
    service, backend = serving_backend(session, host=request.host, cluster=request.cluster,
                                       now=now, down_time=down_time)
    zone = request.availability_zone or service.availability_zone
    if zone != service.availability_zone:
        raise RequestError(
            "availability_zone",
            f"'{zone}' does not match the backend's zone '{service.availability_zone}'",
        )
    type_name = request.volume_type or DEFAULT_VOLUME_TYPE
    volume_type = repo.find_volume_type(session, type_name)
    if volume_type is None:
        raise RequestError("volume_type", f"Cannot find requested '{type_name}' volume type",
                           errors.VOLUME_TYPE_NOT_FOUND)
    ref = current_ref(session, request.ref, backend)
    return ManageSpec(
        ref=ref,
        ref_key=naming.ref_key(ref),
        backend=backend,
        host=request.host if request.cluster is None else None,
        cluster=request.cluster or service.cluster,
        availability_zone=zone,
        volume_type_id=volume_type.id,
        volume_type_name=volume_type.name,
        name=request.name,
        description=request.description,
        bootable=request.bootable,
        metadata=request.metadata,
        project_id=request.project_id,
        user_id=request.user_id,
    )


def current_ref(session: Session, ref: dict[str, str], backend: str) -> dict[str, str]:
    """The ref to adopt by: `ref`, unless it names an object `volume-<id>` of an entry.

    A live entry's object is refused, already managed. A deleted entry never makes an object
    managed (Cinder's `check_already_managed_volume` ignores them): Cinder's way of moving a
    volume out and back in is to unmanage it, then manage `source-name=volume-<old id>`.
    Unmanage here gives the object its original name back (or `unmanaged-<object id>`), and
    records which (`unmanage.renamed`): the request is for the object under that name, so
    the new entry, and a later unmanage, know it by it. (Only on the entry's own backend:
    another backend's object of that name is another object.)
    """
    managed_id = naming.managed_volume_id(ref.get("source-name", ""))
    if not managed_id:
        return ref
    volume = repo.get_volume(session, managed_id)
    if volume is not None and not volume.deleted:
        raise RequestError("ref", f"the object is already managed as volume {managed_id}",
                           errors.ALREADY_MANAGED)
    given_back = {} if volume is None or volume.backend != backend else (
        repo.last_event_details(session, managed_id, events.UNMANAGE_RENAMED))
    if given_back.get("name"):
        return {"source-name": str(given_back["name"])}
    # An object still named volume-<id> that no entry of this backend gave back (one
    # Cinder's unmanage left so, say): the drivers refuse such names, so say why now rather
    # than after an entry was made.
    raise RequestError("ref", f"names an object volume-{managed_id}, and volume {managed_id} "
                              "is not in this backend's inventory: objects named "
                              "volume-<uuid> from outside it cannot be adopted yet; rename "
                              "it on the backend first")
