"""`python -m watcher`: the per-host watcher (one per Docker host)."""

from __future__ import annotations

import logging
import signal
from typing import Sequence

import docker

from shared import config, logs, queues
from shared.startup import wait_for
from shared.store import Store, connect
from watcher.watcher import Watcher

log = logging.getLogger("watcher")

DOCKER_TIMEOUT_SECONDS = 10


def main(argv: Sequence[str] | None = None) -> None:
    settings = config.load_watcher(argv)
    logs.setup("watcher", settings.log_level)
    client = connect(settings.redis_url)
    wait_for("Redis", client.ping, settings)
    docker_client = wait_for("Docker", lambda: _docker(settings.docker_host), settings)

    watcher = Watcher(settings, docker_client, Store(client),
                      queues.registrar_queue(connect(settings.redis_url, decode=False)))
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: watcher.stop.set())
    log.info("watcher started on host %s: Docker %s, liveness TTL %ss renewed every %ss",
             settings.hostname, settings.docker_host, settings.ttl, settings.ttl_refresh)
    watcher.run()
    log.info("watcher stopped")


def _docker(base_url: str) -> docker.DockerClient:
    client = docker.DockerClient(base_url=base_url, timeout=DOCKER_TIMEOUT_SECONDS)
    client.ping()
    return client


if __name__ == "__main__":
    main()
