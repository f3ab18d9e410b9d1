"""The API of device metadata and the asset hierarchy (`hub.web.metadata_service`): effective
metadata per device type and per device with the layers it came from, an admin's edits
(validated, audited), the hierarchy tree with device counts, and the devices of one place.

Registered by `hub.web.api.routes` before its catch-all. A refused edit is 422 naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Path, Query, Request

from hub.metadata.model import MAX_NAME, MetadataDoc
from hub.storage.web_model import DeviceView
from hub.web.api.deps import API, Services, Viewer, client_address, require_principal
from hub.web.api.errors import ApiError, ApiRoute, error_responses, invalid, not_found
from hub.web.container import WebServices
from hub.web.metadata_service import all_devices, at_place, place_of
from hub.web.model import Principal, can_administer

router = APIRouter(route_class=ApiRoute)

MAX_KEY: Final = 128

Key = Annotated[str, Path(min_length=1, max_length=MAX_KEY)]
PlaceQuery = Annotated[
    str | None, Query(max_length=MAX_NAME, description="'' matches devices with no name here")
]


async def require_metadata_admin(
    principal: Annotated[Principal, Depends(require_principal)],
) -> Principal:
    if not can_administer(principal.role):
        raise ApiError(
            403, "forbidden", f"role {principal.role!r} may not edit device metadata; admin only"
        )
    return principal


MetadataAdmin = Annotated[Principal, Depends(require_metadata_admin)]


def _key(name: str, value: str) -> str:
    if "\x00" in value:
        raise invalid(f"{name} must not contain NUL characters")
    return value


async def _device(services: WebServices, device_id: str) -> DeviceView:
    device = await services.reads.device(_key("device_id", device_id))
    if device is None:
        raise not_found(f"no device {device_id!r}")
    return device


@router.get(
    f"{API}/metadata/types",
    operation_id="listTypeMetadata",
    responses=error_responses(401),
    tags=["metadata"],
    summary="The effective metadata of every known device type",
)
async def list_type_metadata(principal: Viewer, services: Services) -> dict[str, Any]:
    service = services.metadata
    views = [await service.type_metadata(t) for t in await service.known_types()]
    return {"items": [v.to_json() for v in views]}


@router.get(
    f"{API}/metadata/types/{{device_type}}",
    operation_id="getTypeMetadata",
    responses=error_responses(401, 422),
    tags=["metadata"],
    summary="One device type's metadata: effective, and the edge and admin layers",
)
async def get_type_metadata(
    principal: Viewer, services: Services, device_type: Key
) -> dict[str, Any]:
    view = await services.metadata.type_metadata(_key("device_type", device_type))
    return view.to_json()


@router.put(
    f"{API}/metadata/types/{{device_type}}",
    operation_id="editTypeMetadata",
    responses=error_responses(401, 403, 422),
    tags=["metadata"],
    summary="Replace the admin layer of a device type's metadata (admin, audited)",
)
async def edit_type_metadata(
    request: Request,
    principal: MetadataAdmin,
    services: Services,
    device_type: Key,
    body: dict[str, Any],
) -> dict[str, Any]:
    key = _key("device_type", device_type)
    try:
        await services.metadata.edit("type", key, body, principal, client_address(request))
    except ValueError as exc:
        raise invalid(str(exc)) from exc
    return (await services.metadata.type_metadata(key)).to_json()


@router.delete(
    f"{API}/metadata/types/{{device_type}}",
    operation_id="resetTypeMetadata",
    status_code=204,
    responses=error_responses(401, 403, 404, 422),
    tags=["metadata"],
    summary="Drop the admin layer of a device type's metadata (admin, audited)",
)
async def reset_type_metadata(
    request: Request, principal: MetadataAdmin, services: Services, device_type: Key
) -> None:
    key = _key("device_type", device_type)
    if not await services.metadata.reset("type", key, principal, client_address(request)):
        raise not_found(f"no admin metadata for device type {key!r}")


@router.get(
    f"{API}/metadata/devices/{{device_id}}",
    operation_id="getDeviceMetadata",
    responses=error_responses(401, 404, 422),
    tags=["metadata"],
    summary="One device's metadata: effective (its type's below its own), and its own layers",
)
async def get_device_metadata(
    principal: Viewer, services: Services, device_id: Key
) -> dict[str, Any]:
    device = await _device(services, device_id)
    view = await services.metadata.device_metadata(device.device_id, device.type)
    return {**view.to_json(), "site": device.site, "type": device.type}


@router.put(
    f"{API}/metadata/devices/{{device_id}}",
    operation_id="editDeviceMetadata",
    responses=error_responses(401, 403, 404, 422),
    tags=["metadata"],
    summary="Replace the admin layer of a device's metadata and place (admin, audited)",
)
async def edit_device_metadata(
    request: Request,
    principal: MetadataAdmin,
    services: Services,
    device_id: Key,
    body: dict[str, Any],
) -> dict[str, Any]:
    device = await _device(services, device_id)
    try:
        await services.metadata.edit(
            "device", device.device_id, body, principal, client_address(request)
        )
    except ValueError as exc:
        raise invalid(str(exc)) from exc
    view = await services.metadata.device_metadata(device.device_id, device.type)
    return {**view.to_json(), "site": device.site, "type": device.type}


@router.delete(
    f"{API}/metadata/devices/{{device_id}}",
    operation_id="resetDeviceMetadata",
    status_code=204,
    responses=error_responses(401, 403, 404, 422),
    tags=["metadata"],
    summary="Drop the admin layer of a device's metadata (admin, audited)",
)
async def reset_device_metadata(
    request: Request, principal: MetadataAdmin, services: Services, device_id: Key
) -> None:
    key = _key("device_id", device_id)
    if not await services.metadata.reset("device", key, principal, client_address(request)):
        raise not_found(f"no admin metadata for device {key!r}")


@router.get(
    f"{API}/hierarchy",
    operation_id="getHierarchy",
    responses=error_responses(401),
    tags=["metadata"],
    summary="The asset hierarchy: sites > areas > lines > machines, with device counts",
)
async def get_hierarchy(principal: Viewer, services: Services) -> dict[str, Any]:
    tree = await services.metadata.hierarchy(await all_devices(services.reads))
    return {"sites": [node.to_json() for node in tree]}


@router.get(
    f"{API}/hierarchy/devices",
    operation_id="listHierarchyDevices",
    responses=error_responses(401, 422),
    tags=["metadata"],
    summary="The devices of one place in the hierarchy, each with its place",
)
async def list_hierarchy_devices(
    principal: Viewer,
    services: Services,
    site: PlaceQuery = None,
    area: PlaceQuery = None,
    line: PlaceQuery = None,
    machine: PlaceQuery = None,
) -> dict[str, Any]:
    wanted = tuple(
        None if v is None else _key(n, v)
        for n, v in (("site", site), ("area", area), ("line", line), ("machine", machine))
    )
    docs = await services.metadata.device_documents()
    items = []
    for device in await all_devices(services.reads):
        doc = docs.get(device.device_id, MetadataDoc())
        place = place_of(device.site, doc)
        if at_place(place, wanted):
            items.append(
                {
                    **device.to_json(),
                    "display_name": doc.display_name,
                    "area": place[1] or None,
                    "line": place[2] or None,
                    "machine": place[3] or None,
                }
            )
    return {"items": items, "total": len(items)}
