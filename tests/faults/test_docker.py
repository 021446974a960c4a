"""Docker faults: inspects that fail, an event stream that stalls without an error, the daemon restarting.

Invariant: a container is withdrawn only when Docker says it is gone or not healthy, never because Docker
was slow to answer; whatever happened while the watcher could not see it is caught up within the bound.
"""

from __future__ import annotations

from types import SimpleNamespace

from shared import keys
from tests.conftest import FAST_LEASE, HOST, HOST_IP, run_web
from tests.faults.convergence import differences, wait_converged, web_key
from tests.support import free_port, holds_for, wait_until

# The tests' watcher renews liveness every second (-ttl-refresh 1): a stall is noticed at the second renewal
# that still sees the same disagreement, then the stream reconnects and the host re-syncs.
STALL_BOUND = 2 * 1 + 3



def test_failing_inspects_are_retried_and_withdraw_nothing(faulty_system: SimpleNamespace) -> None:
    system = faulty_system
    port = free_port()
    container = run_web(system.docker, "web1", port, environment=FAST_LEASE)
    wait_converged(system.redis, system.eureka, 3, "the start", expect={web_key(port)})

    system.docker_proxy.failing_inspects = True
    container.rename("web1-renamed")  # an event whose handling needs an inspect
    wait_until(lambda: "cannot inspect container" in system.watcher.log(), 3, "the failed inspect")
    # Several liveness TTLs (3 s) and leases (3 s) pass while Docker does not answer inspects: still vouched.
    holds_for(lambda: system.redis.exists(keys.live(keys.source(HOST, container.id)))
              and not differences(system.redis, system.eureka, {web_key(port)}), 8, "vouched and registered")

    system.docker_proxy.failing_inspects = False
    wait_until(lambda: system.eureka.instance("WEB", f"{HOST_IP}_{port}")["metadata"]["container-name"]
               == "/web1-renamed", 12, "the retried inspect to publish the new name")
    wait_converged(system.redis, system.eureka, 3, "inspects working again", expect={web_key(port)})


def test_a_stalled_event_stream_is_noticed_and_caught_up(faulty_system: SimpleNamespace) -> None:
    system = faulty_system
    before = free_port()
    gone = run_web(system.docker, "before", before)
    wait_converged(system.redis, system.eureka, 3, "the first start", expect={web_key(before)})

    system.docker_proxy.stall_event_streams()  # open, silent: no error, no events
    port = free_port()
    run_web(system.docker, "during", port)
    gone.remove(force=True)

    took = wait_converged(system.redis, system.eureka, STALL_BOUND, "a stalled event stream",
                          expect={web_key(port)})
    assert system.eureka.instance("WEB", f"{HOST_IP}_{before}") is None
    assert "Docker event stream stalled" in system.watcher.log()
    assert took > 0.5, "converged only once the stall was noticed"
    wait_until(lambda: system.docker_proxy.open_event_streams() == 1, 2, "a new event stream")
