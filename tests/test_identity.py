"""The watcher's host identity: the Docker engine's name by default, and one watcher per identity."""

from __future__ import annotations

import time
from types import SimpleNamespace

from shared import keys
from tests.conftest import HOST_IP, WATCHER_ARGS, run_web, start_watcher
from tests.support import free_port, python_module, Process, wait_until


def test_the_host_identity_is_the_docker_engines_name(system: SimpleNamespace) -> None:
    engine_name = system.docker.info()["Name"]
    port = free_port()
    run_web(system.docker, "web1", port)
    instance = wait_until(lambda: system.eureka.instance("WEB", f"{HOST_IP}_{port}"), 3, "registration")
    assert instance["metadata"]["docker-host"] == engine_name
    assert system.redis.get(keys.host_watcher(engine_name))


def test_a_second_watcher_for_the_same_host_refuses_to_start(system: SimpleNamespace, tmp_path) -> None:
    second = Process("watcher-second", python_module("watcher", *WATCHER_ARGS), tmp_path,
                     {**system.components.env, **system.env}).start()
    started = time.monotonic()
    assert second.popen.wait(15) == 2
    assert time.monotonic() - started >= 3, "it waited one TTL for a dead predecessor's lease to expire"
    message = second.log()
    assert "is held by another watcher" in message and "keeps renewing it" in message
    assert system.watcher.running


def test_a_watcher_killed_hard_is_replaced_once_its_lease_expires(system: SimpleNamespace) -> None:
    system.watcher.kill9()
    replacement = start_watcher(system.components, system.env, name="watcher-replacement")
    assert "waiting up to 3s for its lease to expire" in replacement.log()
    port = free_port()
    run_web(system.docker, "web1", port)
    wait_until(lambda: system.eureka.instance("WEB", f"{HOST_IP}_{port}"), 3, "registration by the replacement")
