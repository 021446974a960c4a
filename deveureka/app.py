"""Flask routes for Eureka's REST API, served under /eureka and under Netflix's /eureka/v2."""

from __future__ import annotations

import gzip
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
    UnsupportedMediaType,
    apps_hashcode,
    decode_registration,
    java_long,
    render_application,
    render_applications,
    render_instance,
    unreadable_body,
)
from deveureka.instance import (
    STATUSES,
    UNKNOWN,
    InvalidInput,
    UnreadableBody,
    parse_instance,
    parse_metadata_update,
)
from deveureka.registry import Registry, RenewOutcome

log = logging.getLogger(__name__)

BASE_PATHS = ("/eureka", "/eureka/v2")
DEFAULT_RESPONSE_CACHE_SECONDS = 30.0

# A rendered answer: HTTP status, body, content type (None for an empty body).
Reply = tuple[int, str, str | None]
# A cached read: ("apps", format), ("delta", format) or ("app", APP, format).
CacheKey = tuple[str, ...]

eureka = Blueprint("eureka", __name__)


@dataclass
class _State:
    registry: Registry
    cache: ResponseCache[CacheKey, Reply]
    strict: bool


def create_app(
    registry: Registry | None = None,
    *,
    response_cache_seconds: float = DEFAULT_RESPONSE_CACHE_SECONDS,
    basic_auth: tuple[str, str] | None = None,
    strict: bool = False,
) -> Flask:
    """The dev Eureka server as a WSGI app. Nothing runs in the background until started: see
    ``response_cache(app).start()`` and ``registry.Evictor``.

    With ``basic_auth`` (user, password) every request must carry those credentials, as a Eureka
    behind Spring Security's basic auth does: 401 otherwise. With ``strict``, registrations and
    metadata updates that Netflix would silently alter are refused (see instance.py).
    """
    registry = registry if registry is not None else Registry()
    cache: ResponseCache[CacheKey, Reply] = ResponseCache(
        response_cache_seconds, lambda key: _build(registry, key)
    )
    registry.subscribe(lambda app_name: cache.invalidate(lambda key: _shows(key, app_name)))
    app = Flask("deveureka")
    app.url_map.strict_slashes = False  # py_eureka_client asks for ".../apps/"
    app.extensions["deveureka"] = _State(registry, cache, strict)
    if basic_auth is not None:
        app.before_request(_require(*basic_auth))
    app.before_request(_require_gzip_for_reads)
    app.after_request(_gzip)
    app.register_blueprint(eureka, url_prefix=BASE_PATHS[0])
    app.register_blueprint(eureka, url_prefix=BASE_PATHS[1], name="eureka_v2")
    return app


def response_cache(app: Flask) -> ResponseCache[CacheKey, Reply]:
    state: _State = app.extensions["deveureka"]
    return state.cache


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


def _require_gzip_for_reads() -> Response | None:
    """Netflix's GzipEncodingEnforcingFilter on GETs under /apps: no Accept-Encoding counts as gzip,
    one without "gzip" is refused with 406. (Python's http.client sends "identity" when told to
    send none, which is why a recorded request "without the header" got 406.)"""
    if request.method != "GET" or not _under_apps():
        return None
    accepted = request.headers.get("Accept-Encoding")
    if accepted is None or "gzip" in accepted:
        return None
    return _empty(406)


def _gzip(response: Response) -> Response:
    """Bodies are gzipped when the client accepts it, as Jersey's GZIPContentEncodingFilter does."""
    accepted = request.headers.get("Accept-Encoding")
    if accepted is None:
        wants_gzip = request.method == "GET" and _under_apps()
    else:
        wants_gzip = "gzip" in accepted
    if wants_gzip and response.status_code != 304 and not response.direct_passthrough:
        body = response.get_data()
        if body:
            response.set_data(gzip.compress(body))
            response.headers["Content-Encoding"] = "gzip"
    return response


def _under_apps() -> bool:
    return any(
        request.path == f"{base}/apps" or request.path.startswith(f"{base}/apps/")
        for base in BASE_PATHS
    )


@eureka.post("/apps/<app_name>")
def register(app_name: str) -> Response:
    state = _state()
    app = app_name.upper()
    try:
        doc = decode_registration(request.get_data(), request.mimetype)
        instance = parse_instance(doc, app, state.registry.now_ms(), strict=state.strict)
    except UnsupportedMediaType as exc:
        log.warning("register %s: 415, %s", app, exc)
        return _empty(415)
    except UnreadableBody as exc:
        log.warning("register %s: 400, cannot parse request body: %s", app, exc)
        body, mimetype = unreadable_body(request.mimetype)
        return Response(body, 400, mimetype=mimetype)
    except InvalidInput as exc:
        return _refuse(400, f"register {app}", exc)
    state.registry.register(instance)
    log.info("registered %s/%s", app, instance.instance_id)
    return _empty(204)


@eureka.get("/apps")
def get_applications() -> Response:
    return _cached(("apps", _listing_format()))


@eureka.get("/apps/delta")
def get_delta() -> Response:
    return _cached(("delta", _listing_format()))


@eureka.get("/apps/<app_name>")
def get_application(app_name: str) -> Response:
    return _cached(("app", app_name.upper(), _listing_format()))


@eureka.get("/apps/<app_name>/<instance_id>")
def get_instance(app_name: str, instance_id: str) -> Response:
    instance = _state().registry.instance(app_name.upper(), instance_id)
    if instance is None:
        return _empty(404)
    fmt = _instance_format()
    return Response(render_instance(instance, fmt), 200, mimetype=_mimetype(fmt))


@eureka.get("/instances/<instance_id>")
def find_instance(instance_id: str) -> Response:
    instance = _state().registry.find_instance(instance_id)
    if instance is None:
        return _empty(404)
    fmt = _instance_format()
    return Response(render_instance(instance, fmt), 200, mimetype=_mimetype(fmt))


@eureka.put("/apps/<app_name>/<instance_id>")
def renew(app_name: str, instance_id: str) -> Response:
    """A heartbeat; its ``status`` and ``overriddenstatus`` parameters only matter between peers."""
    registry, app = _state().registry, app_name.upper()
    outcome = registry.renew(app, instance_id)
    if outcome is not RenewOutcome.RENEWED:
        log.info("heartbeat %s/%s: 404, %s", app, instance_id, outcome.value)
        return _empty(404)
    raw_dirty_ts = request.args.get("lastDirtyTimestamp")
    if raw_dirty_ts is None:
        return _empty(200)
    try:
        client_dirty_ts = java_long(raw_dirty_ts)  # after the renewal, as in Netflix
    except ValueError:
        log.warning("heartbeat %s/%s: 500, malformed lastDirtyTimestamp", app, instance_id)
        return _empty(500)
    if registry.is_client_newer(app, instance_id, client_dirty_ts):
        log.info("heartbeat %s/%s: 404, the client's record is newer", app, instance_id)
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
    change: Callable[[str, str, str, str | None], bool],
    what: str,
) -> Response:
    """PUT and DELETE .../status. Netflix answers 500 to any failure past the 404 check: a value
    that is not exactly a status name (``InstanceStatus.valueOf``), a malformed
    lastDirtyTimestamp."""
    app = app_name.upper()
    if _state().registry.instance(app, instance_id) is None:
        return _empty(404)
    status = request.args.get("value", default)
    if status not in STATUSES:
        log.warning("status %s/%s: 500, value %r is not a status", app, instance_id, status)
        return _empty(500)
    try:
        changed = change(app, instance_id, status, request.args.get("lastDirtyTimestamp"))
    except ValueError as exc:
        log.warning("status %s/%s: 500, %s", app, instance_id, exc)
        return _empty(500)
    if not changed:
        return _empty(500)
    log.info("status %s/%s: %s %s", app, instance_id, what, status)
    return _empty(200)


@eureka.put("/apps/<app_name>/<instance_id>/metadata")
def merge_metadata(app_name: str, instance_id: str) -> Response:
    state, app = _state(), app_name.upper()
    if state.registry.instance(app, instance_id) is None:
        return _empty(404)
    try:
        # The first value of a repeated key, as Netflix.
        items = parse_metadata_update(request.args.to_dict(flat=True), strict=state.strict)
    except InvalidInput as exc:
        return _refuse(400, f"metadata {app}/{instance_id}", exc)
    if not state.registry.merge_metadata(app, instance_id, items):
        return _empty(404)
    return _empty(200)


def _state() -> _State:
    state: _State = current_app.extensions["deveureka"]
    return state


def _build(registry: Registry, key: CacheKey) -> Reply:
    fmt: Format = "json" if key[-1] == "json" else "xml"
    if key[0] == "app":
        instances = registry.application(key[1])
        if instances is None:
            return 404, "", None
        return 200, render_application(key[1], instances, fmt), _mimetype(fmt)
    apps = registry.applications()
    # The delta lists no changes but carries the full registry's hash, so clients that
    # reconcile by hash (Netflix's, py_eureka_client) fall back to a full fetch.
    hashcode = apps_hashcode(instance for _, instances in apps for instance in instances)
    body = render_applications([] if key[0] == "delta" else apps, hashcode, fmt)
    return 200, body, _mimetype(fmt)


def _shows(key: CacheKey, app_name: str) -> bool:
    """Whether the cached read ``key`` shows ``app_name``'s instances."""
    return key[0] != "app" or key[1] == app_name


def _cached(key: CacheKey) -> Response:
    status, body, mimetype = _state().cache.get(key)
    return _empty(status) if mimetype is None else Response(body, status, mimetype=mimetype)


def _listing_format() -> Format:
    # Netflix's listings answer JSON when the Accept header mentions "json" at all, else XML.
    return "json" if "json" in request.headers.get("Accept", "") else "xml"


def _instance_format() -> Format:
    # Single-instance reads are negotiated (Jersey), XML first: */* and no Accept both mean XML.
    best = request.accept_mimetypes.best_match([XML_TYPE, JSON_TYPE])
    return "json" if best == JSON_TYPE else "xml"


def _mimetype(fmt: Format) -> str:
    return JSON_TYPE if fmt == "json" else XML_TYPE


def _empty(status: int) -> Response:
    response = Response(b"", status)
    del response.headers["Content-Type"]
    return response


def _refuse(status: int, what: str, reason: Exception) -> Response:
    log.warning("%s: %d, %s", what, status, reason)
    return Response(str(reason), status, mimetype="text/plain")
