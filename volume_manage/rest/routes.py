"""The Block Storage v3 endpoints served over the SDK (manage, listings, show, unmanage,
delete of a failed adoption). Each is registered twice: under `/v3/{project_id}` and under
`/v3` (project from the token; only the first is in the OpenAPI schema).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from volume_manage.rest import filters, versions, views
from volume_manage.rest.context import CallContext, call_context
from volume_manage.rest.faults import (
    CinderFault,
    from_manage_error,
    manage_target_fault,
    snapshot_manage_fault,
    snapshot_not_found,
    volume_not_found,
)
from volume_manage.rest.schemas import (
    ManageBody,
    SnapshotAction,
    SnapshotManageBody,
    VolumeAction,
)
from volume_manage.sdk import ManageError, VolumeEntry, VolumeManage
from volume_manage.shared import validation
from volume_manage.shared.errors import RequestError
from volume_manage.shared.types import ManageRequest, SnapshotEntry, SnapshotRequest

MANAGE_POLICY = "volume_extension:volume_manage"
UNMANAGE_POLICY = "volume_extension:volume_unmanage"
LIST_MANAGEABLE_POLICY = "volume_extension:list_manageable"
# cinder/policies/manageable_snapshots.py: all three admin-only by default.
SNAPSHOT_MANAGE_POLICY = "snapshot_extension:snapshot_manage"
SNAPSHOT_UNMANAGE_POLICY = "snapshot_extension:snapshot_unmanage"
SNAPSHOT_LIST_MANAGEABLE_POLICY = "snapshot_extension:list_manageable"
GET_POLICY = "volume:get"
GET_ALL_POLICY = "volume:get_all"
DELETE_POLICY = "volume:delete"
SNAPSHOT_GET_POLICY = "volume:get_snapshot"  # cinder/policies/snapshots.py: reader
SNAPSHOT_GET_ALL_POLICY = "volume:get_all_snapshots"
MAX_LIMIT = 1000  # Cinder's osapi_max_limit
DB_MAX_INT = 0x7FFFFFFF  # Cinder's bound for offset
# A manage request waits for the API workflow to make the entry (well under a second when
# the API worker runs); without a worker it would wait for ever.
MANAGE_TIMEOUT_S = 60


def _vm(request: Request) -> VolumeManage:
    """The app's one SDK object; it connects to Temporal on first need if Temporal was not
    up at start (ManageError TemporalUnavailable -> 503 until it is)."""
    vm: VolumeManage = request.app.state.vm
    return vm


def _limit(limit: int | None) -> int:
    if limit is None:
        return MAX_LIMIT
    if limit < 0:
        raise CinderFault(400, "limit param must be positive")
    return min(limit, MAX_LIMIT)


def _offset(offset: int) -> int:
    if not 0 <= offset <= DB_MAX_INT:
        raise CinderFault(400, f"Invalid input received: offset must be between 0 and "
                               f"{DB_MAX_INT}, got {offset}")
    return offset


def _sort(sort: str | None, sort_key: str | None, sort_dir: str | None, default: str) -> str:
    """Cinder's `sort=key[:dir]`, or the deprecated `sort_key`/`sort_dir`; one key here."""
    if sort is not None and (sort_key is not None or sort_dir is not None):
        raise CinderFault(400, "The 'sort_key' and 'sort_dir' parameters are deprecated and "
                               "cannot be used with the 'sort' parameter.")
    if sort is None:
        if sort_key is None and sort_dir is None:
            return default
        sort = f"{sort_key or default.split(':')[0]}:{sort_dir or 'desc'}"
    if "," in sort.strip(","):
        raise CinderFault(400, f"Invalid input received: sort: one sort key is supported "
                               f"here, got {sort[:60]!r}")
    return sort.strip(",").strip()


def _bool_param(name: str, value: str | None) -> bool:
    if value is None:
        return False
    try:
        return validation.parse_bool(value, name)
    except RequestError as err:
        raise CinderFault(400, f"Invalid value '{value[:60]}' for {name}: {err.reason}") from None


async def _visible_volume(ctx: CallContext, vm: VolumeManage, volume_id: str) -> VolumeEntry:
    entry = await vm.get_volume(volume_id)
    if entry is None or not ctx.can_see(entry.project_id):
        raise volume_not_found(volume_id)  # never 403: others' volumes do not exist for you
    return entry


def build_router(context: Callable[..., CallContext], *, in_schema: bool) -> APIRouter:
    router = APIRouter(include_in_schema=in_schema)
    Ctx = Depends(context)

    async def manage(request: Request, body: ManageBody, ctx: CallContext = Ctx) -> JSONResponse:
        ctx.require_admin(MANAGE_POLICY)
        if ctx.project_id is None:
            raise CinderFault(400, "Malformed request url: the token is scoped to no "
                                   "project; name the project the volume goes into in the "
                                   "path (/v3/{project_id}/manageable_volumes)")
        volume = body.volume
        if ctx.version.at_least(versions.VOLUME_MIGRATE_CLUSTER):
            if (volume.host is None) == (volume.cluster is None):
                raise CinderFault(400, "Invalid input received: One and only one of cluster "
                                       "and host must be set.")
        elif volume.cluster is not None:
            raise CinderFault(400, "Invalid input for field/attribute volume. Additional "
                                   "properties are not allowed ('cluster' was unexpected "
                                   "before microversion 3.16)")
        elif volume.host is None:
            raise CinderFault(400, "Invalid input received: Host field is missing.")
        try:
            bootable = validation.parse_bool(
                False if volume.bootable is None else volume.bootable)
        except RequestError as err:
            raise CinderFault(400, f"Invalid input received: {err}") from None
        vm = _vm(request)
        request_ = vm.prepare(ManageRequest(
            ref=volume.ref, host=volume.host, cluster=volume.cluster, name=volume.name,
            description=volume.description, volume_type=volume.volume_type or None,
            availability_zone=volume.availability_zone or None, bootable=bootable,
            metadata=volume.metadata or {}, project_id=ctx.project_id,
            user_id=ctx.identity.user_id,
        ))
        # An unknown or dead host or cluster, or an unknown type, starts nothing.
        try:
            await vm.check_against_inventory(request_)
        except ManageError as err:
            raise manage_target_fault(err, volume.host, volume.cluster) from None
        try:
            entry = await asyncio.wait_for(vm.manage(request_), MANAGE_TIMEOUT_S)
        except TimeoutError:
            raise CinderFault(503, f"The API worker did not answer within {MANAGE_TIMEOUT_S} "
                                   "s; the request may still be carried out: look for the "
                                   "volume with GET volumes before asking again.") from None
        return JSONResponse({"volume": views.volume_legacy_detail(ctx, entry)},
                            status_code=202)

    async def manageable(request: Request, ctx: CallContext, detail: bool,
                         host: str | None, cluster: str | None, marker: str | None,
                         limit: int | None, offset: int, sort: str | None,
                         sort_key: str | None, sort_dir: str | None,
                         snapshots: bool = False, marker_source: str | None = None
                         ) -> JSONResponse:
        """One page of volumes (or `snapshots`); past it, an HTTP `Link: <...>;
        rel="next"` header (see views.manageable_next_link) and a body exactly Cinder's."""
        ctx.require_admin(SNAPSHOT_LIST_MANAGEABLE_POLICY if snapshots
                          else LIST_MANAGEABLE_POLICY)
        if not ctx.version.at_least(versions.MANAGE_EXISTING_CLUSTER):
            cluster = None  # Cinder ignores it before 3.17
        if bool(host) == bool(cluster):
            raise CinderFault(400, "Invalid input received: " + (
                "One and only one of cluster and host must be set."
                if ctx.version.at_least(versions.MANAGE_EXISTING_CLUSTER)
                else "Host field is missing."))
        try:
            page = await _vm(request).list_manageable(
                host or cluster or "",
                marker=marker, limit=_limit(limit), offset=_offset(offset),
                sort=_sort(sort, sort_key, sort_dir, "reference:desc"),
                cluster=bool(cluster), resource="snapshot" if snapshots else "volume",
                marker_source=marker_source)
        except ManageError as err:
            raise from_manage_error(err, host_not_found=404) from None
        headers = {}
        if page.items and (limit is not None or page.more):
            headers["Link"] = views.manageable_next_link(request, page.items[-1],
                                                         _limit(limit), snapshots=snapshots)
        return JSONResponse(views.manageable_list(page.items, detail=detail,
                                                  snapshots=snapshots),
                            headers=headers)

    def manageable_route(detail: bool, min_version: str | None,
                         snapshots: bool = False) -> Callable[..., Any]:
        async def handler(
            request: Request, ctx: CallContext = Ctx,
            host: str | None = Query(None, description="host@backend#pool"),
            cluster: str | None = Query(None, description="from 3.17: cluster@backend"),
            marker: str | None = Query(None, description="a reference (JSON or a name)"),
            limit: int | None = Query(None), offset: int = Query(0),
            sort: str | None = Query(None, description="reference|size[:asc|desc]"),
            sort_key: str | None = Query(None), sort_dir: str | None = Query(None),
        ) -> JSONResponse:
            if min_version:
                ctx.require_version(min_version)
            return await manageable(request, ctx, detail, host, cluster, marker, limit,
                                    offset, sort, sort_key, sort_dir, snapshots)
        return handler

    def manageable_page_route(detail: bool, min_version: str | None,
                              snapshots: bool = False) -> Callable[..., Any]:
        """The page after `after` (views.manageable_next_link's `uri`): marker and limit
        in the path, the rest of the listing's query as given; an offset, which openstacksdk
        repeats on every page, is ignored (the marker places the page)."""
        async def handler(
            request: Request, page_limit: int = Path(ge=0), after: str = Path(),
            ctx: CallContext = Ctx,
            host: str | None = Query(None), cluster: str | None = Query(None),
            sort: str | None = Query(None), sort_key: str | None = Query(None),
            sort_dir: str | None = Query(None),
        ) -> JSONResponse:
            if min_version:
                ctx.require_version(min_version)
            marker, marker_source = views.page_marker(after)
            return await manageable(request, ctx, detail, host, cluster, marker, page_limit,
                                    0, sort, sort_key, sort_dir, snapshots, marker_source)
        return handler

    async def manage_v38(request: Request, body: ManageBody,
                         ctx: CallContext = Ctx) -> JSONResponse:
        ctx.require_version(versions.MANAGE_EXISTING_LIST)
        return await manage(request, body, ctx)

    def volumes_route(detail: bool) -> Callable[..., Any]:
        async def handler(
            request: Request, ctx: CallContext = Ctx,
            marker: str | None = Query(None, description="id of the last volume seen"),
            limit: int | None = Query(None), offset: int = Query(0),
            sort: str | None = Query(None, description="key[:asc|desc]"),
            sort_key: str | None = Query(None), sort_dir: str | None = Query(None),
            status: str | None = Query(None), name: str | None = Query(None),
            host: str | None = Query(None, description="admins only"),
            all_tenants: str | None = Query(None, description="admins only"),
            tenant: str | None = Query(None, alias="project_id",
                                       description="admins, with all_tenants"),
        ) -> dict[str, Any]:
            ctx.require_reader(GET_ALL_POLICY)
            all_projects = _bool_param("all_tenants", all_tenants) and ctx.is_admin
            project = (tenant or None) if all_projects else ctx.project_id
            page_limit = _limit(limit)
            if project is None and not all_projects:  # a token of no project: none of its own
                return views.volume_list(ctx, [], detail=detail, limit=page_limit, query={},
                                         count=0 if filters.parse(
                                             ctx, request.query_params).with_count else None)
            listed = filters.parse(ctx, request.query_params)
            selection: dict[str, Any] = {
                "status": views.FILTER_STATUS.get(status or "", status),
                "host": host if ctx.is_admin else None, "project_id": project, "name": name,
                "filters": listed.filters}
            vm = _vm(request)
            entries = await vm.list_volumes(
                limit=page_limit, marker=marker, offset=_offset(offset),
                sort=_sort(sort, sort_key, sort_dir, "created_at:desc"), **selection)
            query = {k: v for k, v in request.query_params.items() if k != "marker"}
            count = await vm.count_volumes(**selection) if listed.with_count else None
            return views.volume_list(ctx, entries, detail=detail, limit=page_limit,
                                     query=query, count=count)
        return handler

    async def show(request: Request, volume_id: str = Path(),
                   ctx: CallContext = Ctx) -> dict[str, Any]:
        entry = await _visible_volume(ctx, _vm(request), volume_id)
        ctx.require_reader(GET_POLICY)
        return {"volume": views.volume_detail(ctx, entry)}

    async def action(request: Request, body: VolumeAction, volume_id: str = Path(),
                     ctx: CallContext = Ctx) -> Response:
        vm = _vm(request)
        await _visible_volume(ctx, vm, volume_id)
        ctx.require_admin(UNMANAGE_POLICY)
        await vm.start_unmanage(volume_id)
        return Response(status_code=202)

    async def delete(request: Request, volume_id: str = Path(),
                     ctx: CallContext = Ctx) -> Response:
        vm = _vm(request)
        await _visible_volume(ctx, vm, volume_id)
        ctx.require_member(DELETE_POLICY)
        await vm.delete_failed_volume(volume_id)
        return Response(status_code=202)

    # --- snapshots ------------------------------------------------------------------

    async def manage_snapshot(request: Request, body: SnapshotManageBody,
                              ctx: CallContext = Ctx) -> JSONResponse:
        """cinder/api/contrib/snapshot_manage.py: the volume must be the project's (404
        otherwise, never 403), adopted, available or in-use, on a backend that is up and
        adopts snapshots; the 202 is the v2 snapshot view of the entry in `creating`."""
        ctx.require_admin(SNAPSHOT_MANAGE_POLICY)
        if ctx.project_id is None:
            raise CinderFault(400, "Malformed request url: the token is scoped to no "
                                   "project; name the project the snapshot goes into in the "
                                   "path (/v3/{project_id}/os-snapshot-manage)")
        snapshot = body.snapshot
        ref = {"source-name": snapshot.ref} if isinstance(snapshot.ref, str) else snapshot.ref
        if ref is None:
            raise CinderFault(400, "Invalid input received: ref: give the snapshot on the "
                                   "volume's object, e.g. {\"source-name\": \"snap1\"}")
        vm = _vm(request)
        try:
            entry = await asyncio.wait_for(vm.manage_snapshot(SnapshotRequest(
                volume_id=snapshot.volume_id, ref=ref, name=snapshot.name,
                description=snapshot.description, metadata=snapshot.metadata or {},
                project_id=ctx.project_id, user_id=ctx.identity.user_id)), MANAGE_TIMEOUT_S)
        except TimeoutError:
            raise CinderFault(503, f"The API worker did not answer within {MANAGE_TIMEOUT_S} "
                                   "s; the request may still be carried out: look for the "
                                   "snapshot with GET snapshots before asking again.") from None
        except ManageError as err:
            raise snapshot_manage_fault(err) from None
        return JSONResponse({"snapshot": views.snapshot_summary(entry)}, status_code=202)

    async def manage_snapshot_v38(request: Request, body: SnapshotManageBody,
                                  ctx: CallContext = Ctx) -> JSONResponse:
        ctx.require_version(versions.MANAGE_EXISTING_LIST)
        return await manage_snapshot(request, body, ctx)

    def snapshots_route(detail: bool) -> Callable[..., Any]:
        async def handler(
            request: Request, ctx: CallContext = Ctx,
            marker: str | None = Query(None, description="id of the last snapshot seen"),
            limit: int | None = Query(None), offset: int = Query(0),
            sort: str | None = Query(None, description="key[:asc|desc]"),
            sort_key: str | None = Query(None), sort_dir: str | None = Query(None),
            status: str | None = Query(None), name: str | None = Query(None),
            volume_id: str | None = Query(None),
            all_tenants: str | None = Query(None, description="admins only"),
            tenant: str | None = Query(None, alias="project_id",
                                       description="admins, with all_tenants"),
            with_count: str | None = Query(None, description="from 3.45"),
        ) -> dict[str, Any]:
            ctx.require_reader(SNAPSHOT_GET_ALL_POLICY)
            all_projects = _bool_param("all_tenants", all_tenants) and ctx.is_admin
            page_limit = _limit(limit)
            if ctx.project_id is None and not all_projects:  # a token of no project
                return views.snapshot_list(ctx, [], detail=detail, limit=page_limit, query={},
                                           count=None)
            selection: dict[str, Any] = {
                "project_id": (tenant or None) if all_projects else ctx.project_id,
                "status": views.SNAPSHOT_FILTER_STATUS.get(status or "", status),
                "name": name, "volume_id": volume_id}
            vm = _vm(request)
            entries = await vm.list_snapshots(
                limit=page_limit, marker=marker, offset=_offset(offset),
                sort=_sort(sort, sort_key, sort_dir, "created_at:desc"), **selection)
            counted = (ctx.version.at_least(versions.SUPPORT_COUNT_INFO)
                       and _bool_param("with_count", with_count))
            count = await vm.count_snapshots(**selection) if counted else None
            query = {k: v for k, v in request.query_params.items() if k != "marker"}
            return views.snapshot_list(ctx, entries, detail=detail, limit=page_limit,
                                       query=query, count=count)
        return handler

    async def _visible_snapshot(ctx: CallContext, vm: VolumeManage, snapshot_id: str
                                ) -> SnapshotEntry:
        ctx.require_reader(SNAPSHOT_GET_POLICY)
        entry = await vm.get_snapshot(snapshot_id)
        if entry is None or not ctx.can_see(entry.project_id):
            raise snapshot_not_found(snapshot_id)
        return entry

    async def show_snapshot(request: Request, snapshot_id: str = Path(),
                            ctx: CallContext = Ctx) -> dict[str, Any]:
        entry = await _visible_snapshot(ctx, _vm(request), snapshot_id)
        return {"snapshot": views.snapshot_detail(ctx, entry)}

    async def snapshot_action(request: Request, body: SnapshotAction,
                              snapshot_id: str = Path(), ctx: CallContext = Ctx) -> Response:
        vm = _vm(request)
        await _visible_snapshot(ctx, vm, snapshot_id)
        ctx.require_admin(SNAPSHOT_UNMANAGE_POLICY)
        await vm.start_unmanage_snapshot(snapshot_id)
        return Response(status_code=202)

    ok: dict[int | str, dict[str, Any]] = {202: {"description": "accepted"}}
    router.add_api_route("/os-volume-manage", manage, methods=["POST"], status_code=202,
                         summary="Manage an existing volume", responses=ok)
    router.add_api_route("/manageable_volumes", manage_v38, methods=["POST"],
                         status_code=202, summary="Manage an existing volume (3.8)",
                         responses=ok)
    for path, detail, min_version in (
            ("/os-volume-manage", False, None), ("/os-volume-manage/detail", True, None),
            ("/manageable_volumes", False, versions.MANAGE_EXISTING_LIST),
            ("/manageable_volumes/detail", True, versions.MANAGE_EXISTING_LIST)):
        router.add_api_route(path, manageable_route(detail, min_version), methods=["GET"],
                             summary="List manageable volumes" + (" (detail)" if detail
                                                                   else ""))
        router.add_api_route(path + views.PAGE_PATH, manageable_page_route(detail, min_version),
                             methods=["GET"], include_in_schema=False)
    router.add_api_route("/os-snapshot-manage", manage_snapshot, methods=["POST"],
                         status_code=202, summary="Manage an existing snapshot", responses=ok)
    router.add_api_route("/manageable_snapshots", manage_snapshot_v38, methods=["POST"],
                         status_code=202, summary="Manage an existing snapshot (3.8)",
                         responses=ok)
    for path, detail, min_version in (
            ("/os-snapshot-manage", False, None), ("/os-snapshot-manage/detail", True, None),
            ("/manageable_snapshots", False, versions.MANAGE_EXISTING_LIST),
            ("/manageable_snapshots/detail", True, versions.MANAGE_EXISTING_LIST)):
        router.add_api_route(path, manageable_route(detail, min_version, snapshots=True),
                             methods=["GET"], summary="List manageable snapshots" + (
                                 " (detail)" if detail else ""))
        router.add_api_route(path + views.PAGE_PATH,
                             manageable_page_route(detail, min_version, snapshots=True),
                             methods=["GET"], include_in_schema=False)
    router.add_api_route("/snapshots", snapshots_route(False), methods=["GET"],
                         summary="List snapshots")
    router.add_api_route("/snapshots/detail", snapshots_route(True), methods=["GET"],
                         summary="List snapshots with details")
    router.add_api_route("/snapshots/{snapshot_id}", show_snapshot, methods=["GET"],
                         summary="Show a snapshot")
    router.add_api_route("/snapshots/{snapshot_id}/action", snapshot_action, methods=["POST"],
                         status_code=202, summary="Unmanage a snapshot (os-unmanage)",
                         response_class=Response, responses=ok)
    router.add_api_route("/volumes", volumes_route(False), methods=["GET"],
                         summary="List volumes")
    router.add_api_route("/volumes/detail", volumes_route(True), methods=["GET"],
                         summary="List volumes with details")
    router.add_api_route("/volumes/{volume_id}", show, methods=["GET"], summary="Show a volume")
    router.add_api_route("/volumes/{volume_id}/action", action, methods=["POST"],
                         status_code=202, summary="Unmanage a volume (os-unmanage)",
                         response_class=Response, responses=ok)
    router.add_api_route("/volumes/{volume_id}", delete, methods=["DELETE"], status_code=202,
                         summary="Delete the entry of a failed adoption",
                         response_class=Response, responses=ok)
    return router


def in_project(request: Request, project_id: str = Path(min_length=1, max_length=255)
               ) -> CallContext:
    return call_context(request, project_id)


def from_token(request: Request) -> CallContext:
    return call_context(request, None)
