"""Every Redis key name the system uses, in one place.

Vocabulary:
- source: one container on one host, written `<host>:<container id>`; the unit the watcher vouches for.
- instance key: one Eureka instance, written `<APP>/<instance id>`.

Layout (times are Redis server time, `TIME`, in seconds: no rule depends on machines' clocks agreeing):
- `reg:state:<source>`            hash  {doc: ContainerState JSON, gen: counter, event_time: Docker's
                                        time of the event that changed it}             written by the watcher
- `reg:host:<host>:sources`       set   sources with a state on that host               written by the watcher
- `reg:host:<host>:stopping`      set   container ids sent their stop signal, not yet dead  written by the watcher
- `reg:host:<host>`               hash  {seq: changes published, ttl: liveness TTL}     written by the watcher
- `reg:host:<host>:watcher`       string with TTL: the token of the watcher serving that host (one at a time)
- `reg:hosts`                     zset  host -> time its watcher last renewed liveness   written by the watcher
- `reg:live:<source>`             string with TTL; present while the watcher vouches    written by the watcher
- `reg:pending`                   zset  source -> time a registrar should (re)try its state, until applied
- `reg:pending:tries`             hash  source -> attempts so far at its current state (backoff)
- `reg:fast-lane`                 list  sources whose state just changed, newest first, the newest
                                        `defaults.FAST_LANE_LENGTH` kept             written by the watcher
- `reg:job:<name>`                string: id of the queued job for `reconcile:<source>` / `cleanup:<host>`
- `reg:source:<source>:instances` set   instance keys the registrar registered for that source
- `reg:instance:<instance key>`   hash  {doc: registration JSON, source}                written by the registrar
- `reg:instance:<instance key>:claimants`  set  other sources refused that instance while its owner wants it
- `reg:hb:due`                    zset  instance key (or `alb:<ALB instance key>`) -> time its next heartbeat is due
- `reg:hb:interval`               hash  instance key (or `alb:<ALB instance key>`) -> renewal interval in seconds
- `reg:alb:<ALB instance key>`    hash  {doc: the ALB's registration JSON as when it has a healthy target,
                                        endpoint: AlbEndpoint JSON, health: STARTING / UP / DOWN from its target
                                        health, registered: 1 while Eureka holds it}    written by the registrar
                                        and the heartbeater, under the instance's lock
- `reg:alb:<ALB instance key>:members`  set  sources behind that ALB (its reference set; live or not)
- `reg:source:<source>:albs`      set   ALB instance keys the source is a member of
- `reg:lock:source:<source>`, `reg:lock:instance:<instance key>`, `reg:lock:host:<host>`   redis-py locks
- `reg:aws:answer:<question>|<args>`   string with TTL: an AWS answer (JSON) shared by every worker
- `reg:aws:pause:<question>`       string with TTL: the AWS error (JSON) that paused that question fleet-wide
- `reg:aws:failures:<question>`    string with TTL: failures of that question in a row (its backoff)
- `reg:aws:logged:<operation>:<code>`  string with TTL; present while that AWS error is not logged again
- `reg:lock:aws:<question>|<args>` string with TTL; the worker asking AWS for that answer now
"""

PREFIX = "reg:"

PENDING = PREFIX + "pending"
HEARTBEAT_DUE = PREFIX + "hb:due"
HEARTBEAT_INTERVAL = PREFIX + "hb:interval"
HOSTS = PREFIX + "hosts"
PENDING_TRIES = PREFIX + "pending:tries"
FAST_LANE = PREFIX + "fast-lane"
# An ALB's entry in the heartbeat schedule is its instance key with this prefix; no app name holds a ':'.
ALB_SCHEDULE_PREFIX = "alb:"


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


def host_stopping(host: str) -> str:
    return f"{PREFIX}host:{host}:stopping"


def host(host_name: str) -> str:
    return f"{PREFIX}host:{host_name}"


def host_watcher(host_name: str) -> str:
    return f"{PREFIX}host:{host_name}:watcher"


def job(name: str) -> str:
    return f"{PREFIX}job:{name}"


def reconcile_job_name(source_name: str) -> str:
    return f"reconcile:{source_name}"


def cleanup_job_name(host_name: str) -> str:
    return f"cleanup:{host_name}"


def live(source_name: str) -> str:
    return f"{PREFIX}live:{source_name}"


def source_instances(source_name: str) -> str:
    return f"{PREFIX}source:{source_name}:instances"


def instance(key: str) -> str:
    return f"{PREFIX}instance:{key}"


def instance_claimants(key: str) -> str:
    return f"{PREFIX}instance:{key}:claimants"


def alb(key: str) -> str:
    return f"{PREFIX}alb:{key}"


def alb_members(key: str) -> str:
    return f"{PREFIX}alb:{key}:members"


def source_albs(source_name: str) -> str:
    return f"{PREFIX}source:{source_name}:albs"


def alb_schedule_entry(key: str) -> str:
    """The ALB instance `key` as a member of the heartbeat schedule."""
    return ALB_SCHEDULE_PREFIX + key


def alb_of_schedule_entry(entry: str) -> str | None:
    """The ALB instance key of a heartbeat schedule entry; None for a container's instance."""
    return entry[len(ALB_SCHEDULE_PREFIX):] if entry.startswith(ALB_SCHEDULE_PREFIX) else None


def source_lock(source_name: str) -> str:
    return f"{PREFIX}lock:source:{source_name}"


def host_lock(host_name: str) -> str:
    return f"{PREFIX}lock:host:{host_name}"


def instance_lock(key: str) -> str:
    return f"{PREFIX}lock:instance:{key}"


def aws_answer(question: str, *args: str) -> str:
    return f"{PREFIX}aws:answer:{_question_key(question, args)}"


def aws_answer_lock(question: str, *args: str) -> str:
    return f"{PREFIX}lock:aws:{_question_key(question, args)}"


def aws_pause(question: str) -> str:
    return f"{PREFIX}aws:pause:{question}"


def aws_failures(question: str) -> str:
    return f"{PREFIX}aws:failures:{question}"


def aws_logged(operation: str, code: str) -> str:
    return f"{PREFIX}aws:logged:{operation}:{code}"


def _question_key(question: str, args: tuple[str, ...]) -> str:
    # "|" appears in no ARN or AWS resource name, so the arguments cannot run into each other.
    return "|".join((question, *args))
