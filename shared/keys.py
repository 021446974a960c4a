"""Every Redis key name the system uses, in one place.

Vocabulary:
- source: one container on one host, written `<host>:<container id>`; the unit the watcher vouches for.
- instance key: one Eureka instance, written `<APP>/<instance id>`.

Layout:
- `reg:state:<source>`            hash  {doc: ContainerState JSON, gen: counter}      written by the watcher
- `reg:host:<host>:sources`       set   sources with a state on that host               written by the watcher
- `reg:live:<source>`             string with TTL; present while the watcher vouches    written by the watcher
- `reg:pending`                   zset  source -> time its state last changed, until a registrar applied it
- `reg:source:<source>:instances` set   instance keys the registrar registered for that source
- `reg:instance:<instance key>`   hash  {doc: registration JSON, source}                written by the registrar
- `reg:hb:due`                    zset  instance key -> unix time its next heartbeat is due
- `reg:hb:interval`               hash  instance key -> renewal interval in seconds
- `reg:lock:source:<source>`, `reg:lock:instance:<instance key>`   redis-py locks
"""

PREFIX = "reg:"

PENDING = PREFIX + "pending"
HEARTBEAT_DUE = PREFIX + "hb:due"
HEARTBEAT_INTERVAL = PREFIX + "hb:interval"


def source(host: str, container_id: str) -> str:
    return f"{host}:{container_id}"


def split_source(source_name: str) -> tuple[str, str]:
    host, _, container_id = source_name.rpartition(":")
    return host, container_id


def instance_key(app: str, instance_id: str) -> str:
    return f"{app.upper()}/{instance_id}"


def split_instance_key(key: str) -> tuple[str, str]:
    app, _, instance_id = key.partition("/")
    return app, instance_id


def state(source_name: str) -> str:
    return f"{PREFIX}state:{source_name}"


def host_sources(host: str) -> str:
    return f"{PREFIX}host:{host}:sources"


def live(source_name: str) -> str:
    return f"{PREFIX}live:{source_name}"


def source_instances(source_name: str) -> str:
    return f"{PREFIX}source:{source_name}:instances"


def instance(key: str) -> str:
    return f"{PREFIX}instance:{key}"


def source_lock(source_name: str) -> str:
    return f"{PREFIX}lock:source:{source_name}"


def instance_lock(key: str) -> str:
    return f"{PREFIX}lock:instance:{key}"
