"""REST and WebSocket API of the web process (`/api/v1`), and `/healthz`, `/readyz`, `/metrics`.

Every `/api/v1` route needs `Authorization: Bearer <token>` (`iot-hub token create NAME --role
ROLE [--expires-in 30d]`): none gives 401 with `WWW-Authenticate: Bearer`, a wrong, revoked or
expired one 401 (an expired one says when it expired), a viewer acknowledging or clearing an
alert 403, anyone but an admin reading the audit log (`GET /api/v1/audit`) 403. Errors are
JSON `{"error": <code>, "detail": <message>}` with a message that names the parameter at
fault; the OpenAPI document (`/openapi.json`, `/docs`) describes every response, errors
included.

WebSocket `/api/v1/live?devices=a,b&alerts=true&token=...` (or the Authorization header) sends
`{"type": "readings", "readings": [...]}` and `{"type": "alert", "alert": {...}}` as the hub
publishes them (`hub.web.api.live`). Bodies are in `hub.web.api.models`; errors in
`hub.web.api.errors`; the token's principal and shared parameters in `hub.web.api.deps`; the
routes in `hub.web.api.routes`, those of shelving, bulk actions and maintenance windows in
`hub.web.api.alarms` (docs/alarms.md), and the alert rules, their edits (admin), versions,
diffs and rollbacks under `/api/v1/rules` in `hub.web.api.rules` (docs/rules.md).
"""

from hub.web.api.errors import ApiError
from hub.web.api.routes import router

__all__ = ["ApiError", "router"]
