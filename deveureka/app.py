"""Flask routes for Eureka's REST API, served under /eureka and under Netflix's /eureka/v2."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass

from flask import Blueprint, Flask, Response, current_app, request

from deveureka.cache import ResponseCache
from deveureka.codec import (
    JSON_TYPE,
    XML_TYPE,
    Format,
    UnreadableBody,
    UnsupportedMediaType,
    apps_hashcode,
    decode_registration,
    render_application,
    render_applications,
    render_instance,
)
from deveureka.instance import (
    UNKNOWN,
    InvalidInput,
    check_metadata,
    parse_instance,
    parse_status,
    parse_timestamp,
)
from deveureka.registry import Registry, RenewOutcome

log = logging.getLogger(__name__)

BASE_PATHS = ("/eureka", "/eureka/v2")

# A rendered answer: HTTP status, body, content type (None for an empty body).
Reply = tuple[int, str, str | None]

eureka = Blueprint("eureka", __name__)


@dataclass
class _State:
    registry: Registry
    cache: ResponseCache[Reply]


def create_app(
    registry: Registry | None = None,
    *,
    response_cache_seconds: float = 0.0,
    basic_auth: tuple[str, str] | None = None,
) -> Flask:
    """The dev Eureka server as a WSGI app. Eviction is not started here (see registry.Evictor).

    With ``basic_auth`` (user, password) every request must carry those credentials, as a Eureka
    behind Spring Security's basic auth does: 401 otherwise.
    """
    app = Flask("deveureka")
    app.url_map.strict_slashes = False  # py_eureka_client asks for ".../apps/"
    app.extensions["deveureka"] = _State(
        registry if registry is not None else Registry(), ResponseCache(response_cache_seconds)
    )
    if basic_auth is not None:
        app.before_request(_require(*basic_auth))
    app.register_blueprint(eureka, url_prefix=BASE_PATHS[0])
    app.register_blueprint(eureka, url_prefix=BASE_PATHS[1], name="eureka_v2")
    return app


def _require(user: str, password: str) -> Callable[[], Response | None]:
    def check() -> Response | None:
        given = request.authorization
        if (
            given is not None
            and hmac.compare_digest(given.username or "", user)
            and hmac.compare_digest(given.password or "", password)
        ):
            return None
        return Response(
            "authentication required\n", 401, {"WWW-Authenticate": 'Basic realm="eureka"'}
        )

    return check


@eureka.post("/apps/<app_name>")
def register(app_name: str) -> Response:
    registry = _state().registry
    app = app_name.upper()
    try:
        doc = decode_registration(request.get_data(), request.mimetype)
        instance = parse_instance(doc, app, registry.now_ms())
    except UnsupportedMediaType as exc:
        return _refuse(415, f"register {app}", exc)
    except (UnreadableBody, InvalidInput) as exc:
        return _refuse(400, f"register {app}", exc)
    registry.register(instance)
    log.info("registered %s/%s", app, instance.instance_id)
    return _empty(204)


@eureka.get("/apps")
def get_applications() -> Response:
    fmt = _format()
    return _cached(("apps", fmt), lambda: _applications(fmt, delta=False))


@eureka.get("/apps/delta")
def get_delta() -> Response:
    fmt = _format()
    return _cached(("delta", fmt), lambda: _applications(fmt, delta=True))


@eureka.get("/apps/<app_name>")
def get_application(app_name: str) -> Response:
    app, fmt = app_name.upper(), _format()

    def build() -> Reply:
        instances = _state().registry.application(app)
        if instances is None:
            return 404, "", None
        return 200, render_application(app, instances, fmt), _mimetype(fmt)

    return _cached(("app", app, fmt), build)


@eureka.get("/apps/<app_name>/<instance_id>")
def get_instance(app_name: str, instance_id: str) -> Response:
    instance = _state().registry.instance(app_name.upper(), instance_id)
    if instance is None:
        return _empty(404)
    fmt = _format()
    return Response(render_instance(instance, fmt), 200, mimetype=_mimetype(fmt))


@eureka.get("/instances/<instance_id>")
def find_instance(instance_id: str) -> Response:
    instance = _state().registry.find_instance(instance_id)
    if instance is None:
        return _empty(404)
    fmt = _format()
    return Response(render_instance(instance, fmt), 200, mimetype=_mimetype(fmt))


@eureka.put("/apps/<app_name>/<instance_id>")
def renew(app_name: str, instance_id: str) -> Response:
    app = app_name.upper()
    try:
        client_dirty_ts = parse_timestamp(
            request.args.get("lastDirtyTimestamp"), "lastDirtyTimestamp"
        )
    except InvalidInput as exc:
        return _refuse(400, f"heartbeat {app}/{instance_id}", exc)
    outcome = _state().registry.renew(app, instance_id, client_dirty_ts)
    if outcome is not RenewOutcome.RENEWED:
        log.info("heartbeat %s/%s: 404, %s", app, instance_id, outcome.value)
        return _empty(404)
    return _empty(200)


@eureka.delete("/apps/<app_name>/<instance_id>")
def cancel(app_name: str, instance_id: str) -> Response:
    app = app_name.upper()
    if not _state().registry.cancel(app, instance_id):
        return _empty(404)
    log.info("cancelled %s/%s", app, instance_id)
    return _empty(200)


@eureka.put("/apps/<app_name>/<instance_id>/status")
def set_status(app_name: str, instance_id: str) -> Response:
    return _change_status(app_name, instance_id, None, _state().registry.set_status, "override")


@eureka.delete("/apps/<app_name>/<instance_id>/status")
def delete_status_override(app_name: str, instance_id: str) -> Response:
    return _change_status(
        app_name,
        instance_id,
        UNKNOWN,
        _state().registry.delete_status_override,
        "override removed, status",
    )


def _change_status(
    app_name: str,
    instance_id: str,
    default: str | None,
    change: Callable[[str, str, str, int | None], bool],
    what: str,
) -> Response:
    """PUT and DELETE .../status: `value` (or `default`) and `lastDirtyTimestamp` from the query."""
    app = app_name.upper()
    if _state().registry.instance(app, instance_id) is None:
        return _empty(404)
    try:
        status = parse_status(request.args.get("value", default))
        client_dirty_ts = parse_timestamp(
            request.args.get("lastDirtyTimestamp"), "lastDirtyTimestamp"
        )
    except InvalidInput as exc:
        return _refuse(400, f"status {app}/{instance_id}", exc)
    if not change(app, instance_id, status, client_dirty_ts):
        return _empty(404)
    log.info("status %s/%s: %s %s", app, instance_id, what, status)
    return _empty(200)


@eureka.put("/apps/<app_name>/<instance_id>/metadata")
def merge_metadata(app_name: str, instance_id: str) -> Response:
    app = app_name.upper()
    if _state().registry.instance(app, instance_id) is None:
        return _empty(404)
    items = request.args.to_dict(flat=True)  # first value of a repeated key, as Netflix
    try:
        check_metadata(items)
    except InvalidInput as exc:
        return _refuse(400, f"metadata {app}/{instance_id}", exc)
    if not _state().registry.merge_metadata(app, instance_id, items):
        return _empty(404)
    return _empty(200)


def _state() -> _State:
    state: _State = current_app.extensions["deveureka"]
    return state


def _applications(fmt: Format, delta: bool) -> Reply:
    apps = _state().registry.applications()
    # The delta lists no changes but carries the full registry's hash, so clients that
    # reconcile by hash (Netflix's, py_eureka_client) fall back to a full fetch.
    hashcode = apps_hashcode(instance for _, instances in apps for instance in instances)
    return 200, render_applications([] if delta else apps, hashcode, fmt), _mimetype(fmt)


def _cached(key: tuple[str, ...], build: Callable[[], Reply]) -> Response:
    status, body, mimetype = _state().cache.get(key, build)
    return Response(body, status, mimetype=mimetype)


def _format() -> Format:
    # Netflix answers XML unless the client asks for JSON; */* and no Accept both mean XML.
    best = request.accept_mimetypes.best_match([XML_TYPE, JSON_TYPE])
    return "json" if best == JSON_TYPE else "xml"


def _mimetype(fmt: Format) -> str:
    return JSON_TYPE if fmt == "json" else XML_TYPE


def _empty(status: int) -> Response:
    return Response(b"", status)


def _refuse(status: int, what: str, reason: Exception) -> Response:
    log.warning("%s: %d, %s", what, status, reason)
    return Response(f"{reason}\n", status, mimetype="text/plain")
