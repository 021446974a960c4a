"""`python -m watcher`: the per-host watcher (one per Docker host)."""

from __future__ import annotations

import logging
import signal
import sys
from typing import Sequence

from shared import config, defaults, health, logs, metrics, queues
from shared.connection import connect
from shared.startup import wait_for
from shared.store import Store
from watcher import hostip, identity
from watcher.ec2 import Ec2MetadataClient
from watcher.engine import DockerEngine
from watcher.liveness import Liveness
from watcher.publisher import Publisher
from watcher.services import Rules
from watcher.watcher import Watcher

log = logging.getLogger("watcher")


def main(argv: Sequence[str] | None = None) -> None:
    settings = config.load_watcher(argv)
    logs.setup("watcher", settings.log_level, settings.log_format)
    endpoint = health.serve("watcher", settings.metrics_address, settings.metrics_port, metrics.registry_for("watcher"))
    looked_up_ip = _looked_up_ip(settings)
    client = connect(settings)
    wait_for("Redis", client.ping, settings)
    engine = wait_for("Docker", lambda: _docker(settings.docker_host), settings)
    store = Store(client)
    try:
        host = settings.hostname or identity.engine_name(engine)
        token = identity.new_token()
        seq = identity.claim(store, host, token, settings.ttl)
    except (identity.BadEngineName, identity.IdentityTaken) as err:
        sys.stderr.write(f"watcher: error: {err}\n")
        raise SystemExit(2) from None

    logs.add_context(host=host)
    liveness = Liveness(store, host, token, settings.ttl, seq)
    rules = Rules(hostname=host, forced_ip=looked_up_ip or settings.ip, internal=settings.internal,
                  use_ip_from_label=settings.use_ip_from_label or None, tags=settings.tags,
                  require_label=settings.require_label, name_from_image=settings.name_from_image)
    publisher = Publisher(settings, host, engine, store,
                          queues.registrar_queue(connect(settings, decode=False)), liveness, rules,
                          Ec2MetadataClient(settings.ec2_metadata_url))
    watcher = Watcher(settings, engine, publisher, liveness)
    if endpoint is not None:
        endpoint.checks = watcher.checks
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: watcher.stop.set())
    log.info("watcher started for host %s: Docker %s, liveness TTL %ss renewed every %ss",
             host, settings.docker_host, settings.ttl, settings.ttl_refresh)
    watcher.run()
    if watcher.failure is not None:
        log.critical("%s; exiting", watcher.failure)
        raise SystemExit(1)
    store.release_host(host, token)
    log.info("watcher stopped")


def _looked_up_ip(settings: config.WatcherConfig) -> str | None:
    """This host's IP from -ip-lookup-source, if given. A failure ends the watcher with
    -exit-on-ip-lookup-failure; otherwise -ip or the hostname's IP serves until a later lookup works."""
    if not settings.ip_lookup_source:
        return None
    ip = hostip.look_up_with_retries(settings.ip_lookup_source, settings.ip_lookup_retries,
                                     settings.retry_interval_seconds)
    if ip is None:
        if settings.exit_on_ip_lookup_failure:
            log.critical("IP lookup from %s failed %d times; exiting (-exit-on-ip-lookup-failure)",
                         settings.ip_lookup_source, settings.ip_lookup_retries)
            raise SystemExit(1)
        log.error("IP lookup from %s failed %d times; using %s until a lookup works",
                  settings.ip_lookup_source, settings.ip_lookup_retries,
                  settings.ip or "the IP the host's name resolves to")
    return ip


def _docker(address: str) -> DockerEngine:
    engine = DockerEngine(address, defaults.DOCKER_TIMEOUT_SECONDS)
    engine.ping()
    return engine


if __name__ == "__main__":
    main()
