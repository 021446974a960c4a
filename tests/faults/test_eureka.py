"""Eureka faults: down, answering 500, answering 401 then OK, answering slower than the timeout, restarted empty.

Invariant: nothing is lost and nothing is applied that did not reach Eureka. While Eureka cannot take a
change, the change stays pending (retried with backoff, at most one queued job per container); once Eureka
answers again the registry converges within the sweep's backoff at that point.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from rq import Queue

from shared import keys, queues
from tests.conftest import FAST_LEASE, HOST_IP, run_web, start_system
from tests.faults.convergence import wait_converged, web_key
from tests.faults.proxies import Fault
from tests.support import free_port, holds_for, wait_until

# An outage of a few seconds leaves a change pending at most 5 + 10 s before its next attempt (backoff
# doubling from 5 s), plus the time the attempt takes.
AFTER_OUTAGE_BOUND = 25



def writes(method: str, path: str) -> bool:
    return method in ("POST", "PUT", "DELETE")


@pytest.mark.parametrize("status", [500, 503, 401, 403, 429])
def test_changes_wait_while_eureka_refuses_and_converge_when_it_answers_again(
        faulty_system: SimpleNamespace, status: int) -> None:
    system = faulty_system
    kept, stopped, started = free_port(), free_port(), free_port()
    run_web(system.docker, "kept", kept, environment=FAST_LEASE)
    leaving = run_web(system.docker, "leaving", stopped, environment=FAST_LEASE)
    wait_converged(system.redis, system.eureka, 3, "the starts", expect={web_key(kept), web_key(stopped)})

    system.eureka_proxy.faults.append(Fault(writes, status=status))
    arriving = run_web(system.docker, "arriving", started, environment=FAST_LEASE)
    leaving.kill()
    for flip in range(6):  # changing while Eureka refuses: still at most one queued job per container
        arriving.rename(f"arriving-{flip}")
    queue = Queue(queues.REGISTRAR_QUEUE, connection=system.redis)
    holds_for(lambda: queue.count <= 3, 4, "at most one queued reconcile per container")
    source = keys.source(system.docker.info()["Name"], arriving.id)
    assert system.redis.zscore(keys.PENDING, source) is not None, "not applied while Eureka refuses"
    assert system.redis.smembers(keys.source_instances(source)) == set()

    system.eureka_proxy.faults.clear()
    wait_converged(system.redis, system.eureka, AFTER_OUTAGE_BOUND, f"Eureka answering {status}",
                   expect={web_key(kept), web_key(started)})
    assert system.eureka.instance("WEB", f"{HOST_IP}_{stopped}") is None


def test_eureka_slower_than_the_timeout_is_a_failure_that_is_retried(
        components, eureka, docker_client, docker_proxy, eureka_proxy, redis_client, redis_url) -> None:
    env = {"EUREKA_URL": eureka_proxy.url, "DOCKER_HOST": docker_proxy.host, "EUREKA_TIMEOUT": "1"}
    start_system(components, env, redis_url)
    eureka_proxy.faults.append(Fault(writes, delay=2.5))
    port = free_port()
    run_web(docker_client, "slow", port, environment=FAST_LEASE)
    wait_until(lambda: "Eureka unavailable, retrying later" in components.logs(), 20, "timeouts noticed")

    eureka_proxy.faults.clear()
    wait_converged(redis_client, eureka, AFTER_OUTAGE_BOUND, "Eureka answering slowly", expect={web_key(port)})


def test_eureka_down_then_restarted_empty(faulty_system: SimpleNamespace) -> None:
    system = faulty_system
    port, later = free_port(), free_port()
    run_web(system.docker, "web1", port, environment=FAST_LEASE)
    wait_converged(system.redis, system.eureka, 3, "the start", expect={web_key(port)})

    system.eureka.stop()
    run_web(system.docker, "web2", later, environment=FAST_LEASE)
    wait_until(lambda: "Eureka unavailable" in system.components.logs(), 10, "the outage noticed")
    system.eureka.start()  # empty: it keeps nothing across a restart
    wait_converged(system.redis, system.eureka, AFTER_OUTAGE_BOUND, "Eureka restarted empty",
                   expect={web_key(port), web_key(later)})
