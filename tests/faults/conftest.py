"""Fixtures of the fault suite: the whole system with fault-injecting proxies in front of Docker and Eureka."""

from __future__ import annotations

from types import SimpleNamespace

import docker
import pytest
import redis

from tests.conftest import Components, start_system
from tests.faults.proxies import DockerProxy, EurekaProxy
from tests.support import DevEureka, DockerEngine


@pytest.fixture
def faulty_system(components: Components, eureka: DevEureka, docker_engine: DockerEngine,
                  docker_client: docker.DockerClient, docker_proxy: DockerProxy, eureka_proxy: EurekaProxy,
                  redis_client: redis.Redis, redis_url: str) -> SimpleNamespace:
    """The whole system, its watcher reading Docker through `docker_proxy` and its workers writing to Eureka
    through `eureka_proxy`."""
    env = {"EUREKA_URL": eureka_proxy.url, "DOCKER_HOST": docker_proxy.host}
    watcher = start_system(components, env, redis_url)
    return SimpleNamespace(env=env, watcher=watcher, eureka=eureka, docker=docker_client, redis=redis_client,
                           components=components, docker_proxy=docker_proxy, eureka_proxy=eureka_proxy,
                           docker_engine=docker_engine)
