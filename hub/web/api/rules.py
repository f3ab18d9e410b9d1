"""The API of the alert rules (`hub.web.rules_service`): the rules in force with where each value
comes from, an admin's edits, the versions, the difference between two, and rollbacks.

Registered by `hub.web.api.routes` before its catch-all. A refused edit is 422 with a message
naming each field the rules model refused; an edit based on a version that is no longer the
current one is 409.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from hub.rules.edits import EffectiveRule, FieldDiff, RuleChange
from hub.storage.rule_versions import MAX_VERSIONS_PAGE, RuleVersion, VersionConflict
from hub.web.api.deps import API, Services, Viewer, client_address, require_principal
from hub.web.api.errors import ApiError, ApiRoute, error_responses, invalid, not_found
from hub.web.api.models import ErrorBody
from hub.web.model import Principal, can_administer
from hub.web.rules_service import MAX_COMMENT_CHARS, RuleEditError

router = APIRouter(route_class=ApiRoute)

MAX_VERSION: Final = 2**31 - 1
FieldValue = int | float | bool | str | None  # int first: 10 stays 10, not 10.0
_CONFLICT: Final[dict[int | str, dict[str, Any]]] = {
    409: {"model": ErrorBody, "description": "The rules changed since base_version: edit again"}
}


async def require_rules_admin(
    principal: Annotated[Principal, Depends(require_principal)],
) -> Principal:
    if not can_administer(principal.role):
        raise ApiError(
            403, "forbidden", f"role {principal.role!r} may not edit alert rules; admin only"
        )
    return principal


RulesAdmin = Annotated[Principal, Depends(require_rules_admin)]
Version = Annotated[int, Path(ge=0, le=MAX_VERSION, description="0: the seed, no edits")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChangeIn(_Body):
    rule: str = Field(
        min_length=1,
        max_length=200,
        description="the rule's key in its section (spindle_temp_c.threshold), or 'offline'",
    )
    device_type: str | None = Field(
        default=None, max_length=64, description="the type's section; null: the default section"
    )
    device_id: str | None = Field(
        default=None, max_length=64, description="one device of device_type (an override)"
    )
    fields: dict[str, FieldValue] = Field(
        description="new values (warn_high, crit_high, warn_low, crit_low, hysteresis, "
        "clear_after_s, enabled, ...); null unsets a field"
    )


class EditIn(_Body):
    changes: list[ChangeIn] = Field(min_length=1, max_length=200)
    comment: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS)
    base_version: int | None = Field(
        default=None, ge=0, description="refuse (409) unless this is still the current version"
    )


class RollbackIn(_Body):
    comment: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS)


class ValueOut(BaseModel):
    value: Any
    origin: str = Field(description="default (defaults.yaml), file (HUB_RULES_FILE) or edit")
    device: bool = Field(description="set by the device's own override")


class RuleOut(BaseModel):
    device_type: str | None
    device_id: str | None
    key: str
    rule_id: str
    enabled: bool
    fields: dict[str, ValueOut]


class RulesOut(BaseModel):
    version: int = Field(description="the version in force; 0: defaults and file alone")
    rules: list[RuleOut]


class VersionOut(BaseModel):
    version: int
    author: str
    created_at: int = Field(description="epoch ms")
    comment: str | None
    rollback_of: int | None
    document: dict[str, Any] = Field(description="the edits, in the rule files' layout")
    changes: list[str] | None = Field(
        default=None, description="in lists: what this version changed from the one before"
    )


class VersionsOut(BaseModel):
    items: list[VersionOut]


class DiffLineOut(BaseModel):
    scope: str
    rule: str
    field: str
    old: Any
    new: Any
    text: str


class DiffOut(BaseModel):
    from_version: int
    to_version: int
    changes: list[DiffLineOut]


def _rule(rule: EffectiveRule) -> RuleOut:
    return RuleOut(
        device_type=rule.scope.device_type,
        device_id=rule.scope.device_id,
        key=rule.key,
        rule_id=rule.rule_id,
        enabled=rule.enabled,
        fields={
            name: ValueOut(value=v.value, origin=v.origin, device=v.device)
            for name, v in rule.fields.items()
        },
    )


def _version(row: RuleVersion) -> VersionOut:
    return VersionOut(
        version=row.version,
        author=row.author,
        created_at=row.created_at,
        comment=row.comment,
        rollback_of=row.rollback_of,
        document=row.document,
    )


def _diff(d: FieldDiff) -> DiffLineOut:
    return DiffLineOut(scope=d.scope, rule=d.rule, field=d.field, old=d.old, new=d.new, text=str(d))


def _no_nul(name: str, value: str | None) -> None:
    if value is not None and "\x00" in value:
        raise invalid(f"body field {name!r} must not contain NUL characters")


@router.get(
    f"{API}/rules",
    operation_id="listRules",
    response_model=RulesOut,
    responses=error_responses(401),
    tags=["rules"],
    summary="Every rule per device type and device override, each value with its origin",
)
async def list_rules(principal: Viewer, services: Services) -> RulesOut:
    view = await services.rules.view()
    return RulesOut(version=view.version, rules=[_rule(r) for r in view.rules])


@router.post(
    f"{API}/rules/edits",
    operation_id="editRules",
    status_code=201,
    response_model=VersionOut,
    responses={**error_responses(401, 403, 422), **_CONFLICT},
    tags=["rules"],
    summary="Change fields of rules: a new version, validated and audited (admin)",
)
async def edit_rules(
    request: Request, principal: RulesAdmin, services: Services, body: EditIn
) -> VersionOut:
    _no_nul("comment", body.comment)
    changes = [RuleChange(c.rule, dict(c.fields), c.device_type, c.device_id) for c in body.changes]
    try:
        row = await services.rules.edit(
            changes,
            principal,
            comment=body.comment,
            base=body.base_version,
            client=client_address(request),
        )
    except RuleEditError as exc:
        raise invalid("; ".join(exc.problems)) from exc
    except VersionConflict as exc:
        raise ApiError(409, "conflict", str(exc)) from exc
    return _version(row)


@router.get(
    f"{API}/rules/versions",
    operation_id="listRuleVersions",
    response_model=VersionsOut,
    responses=error_responses(401, 422),
    tags=["rules"],
    summary="The versions of the rule edits, newest first",
)
async def list_versions(
    principal: Viewer,
    services: Services,
    limit: Annotated[int, Query(ge=1, le=MAX_VERSIONS_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_VERSION)] = 0,
) -> VersionsOut:
    rows = await services.rules.history_with_changes(limit, offset)
    return VersionsOut(
        items=[
            _version(row).model_copy(update={"changes": [str(d) for d in changes]})
            for row, changes in rows
        ]
    )


@router.get(
    f"{API}/rules/versions/{{version}}",
    operation_id="getRuleVersion",
    response_model=VersionOut,
    responses=error_responses(401, 404, 422),
    tags=["rules"],
    summary="One version of the rule edits",
)
async def get_version(
    principal: Viewer, services: Services, version: Annotated[int, Path(ge=1, le=MAX_VERSION)]
) -> VersionOut:
    row = await services.rules.get(version)
    if row is None:
        raise not_found(f"no rules version {version}")
    return _version(row)


@router.get(
    f"{API}/rules/diff",
    operation_id="diffRuleVersions",
    response_model=DiffOut,
    responses=error_responses(401, 404, 422),
    tags=["rules"],
    summary="Which field of which rule differs between two versions (0: the seed)",
)
async def diff_versions(
    principal: Viewer,
    services: Services,
    from_version: Annotated[int, Query(alias="from", ge=0, le=MAX_VERSION)],
    to_version: Annotated[int, Query(alias="to", ge=0, le=MAX_VERSION)],
) -> DiffOut:
    changes = await services.rules.diff(from_version, to_version)
    if changes is None:
        raise not_found(f"no rules version {from_version} or {to_version}")
    return DiffOut(
        from_version=from_version, to_version=to_version, changes=[_diff(d) for d in changes]
    )


@router.post(
    f"{API}/rules/versions/{{version}}/rollback",
    operation_id="rollbackRules",
    status_code=201,
    response_model=VersionOut,
    responses=error_responses(401, 403, 404, 422),
    tags=["rules"],
    summary="A new version with an earlier version's edits (admin)",
)
async def rollback_rules(
    request: Request,
    principal: RulesAdmin,
    services: Services,
    version: Version,
    body: RollbackIn | None = None,
) -> VersionOut:
    comment = None if body is None else body.comment
    _no_nul("comment", comment)
    try:
        row = await services.rules.rollback(
            version, principal, comment=comment, client=client_address(request)
        )
    except RuleEditError as exc:
        raise invalid("; ".join(exc.problems)) from exc
    except VersionConflict as exc:
        raise ApiError(409, "conflict", str(exc)) from exc
    if row is None:
        raise not_found(f"no rules version {version}")
    return _version(row)
