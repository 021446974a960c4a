"""The wire format of a container state: what the watcher writes without pydantic is, byte for byte, what
pydantic writes for the same record (and what earlier versions stored); readers refuse anything else."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest
from pydantic import TypeAdapter

from shared.models import ContainerState, Ec2Metadata, InstanceStatus, Phase, ServiceRecord, parse_state, state_json
from tests.support import REPO
from tests.test_services import FIXTURES, INTERNAL, RULES, derive, inspect

CONTAINER = "c" * 64
RECORD = ServiceRecord(service_id="host-a:web:80", name="web", ip="10.0.0.5", port=32768, exposed_port=80,
                       protocol="tcp", host_ip="10.0.0.5", tags=("a", "b"),
                       attrs={"eureka_metadata_note": 'caf\u00e9 "quoted" \\ \n\t\u0001 \u2028 \U0001f600',
                              "weight": "3"},
                       container_id=CONTAINER, container_name="/web")
EC2 = Ec2Metadata(instance_id="i-0123", local_hostname="ip-10-0-0-5", local_ipv4="10.0.0.5",
                  availability_zone="us-east-1a")
RUNNING = ContainerState(host="host-a", container_id=CONTAINER, container_name="/web", phase=Phase.RUNNING,
                         status=InstanceStatus.STARTING, services=(RECORD,), ec2=EC2)
EXITED = ContainerState(host="host-a", container_id=CONTAINER, container_name="/web", phase=Phase.EXITED,
                        status=InstanceStatus.DOWN, keep_registered=True)
# Written by the pydantic models of earlier versions (BaseModel.model_dump_json) for RUNNING and EXITED.
STORED_BEFORE = {
    "running": '{"v":1,"host":"host-a","container_id":"' + CONTAINER + '","container_name":"/web","phase":"running",'
               '"status":"STARTING","services":[{"service_id":"host-a:web:80","name":"web","ip":"10.0.0.5",'
               '"port":32768,"exposed_port":80,"protocol":"tcp","host_ip":"10.0.0.5","tags":["a","b"],"attrs":'
               '{"eureka_metadata_note":"caf\u00e9 \\"quoted\\" \\\\ \\n\\t\\u0001 \u2028 \U0001f600","weight":"3"},'
               '"container_id":"' + CONTAINER + '","container_name":"/web"}],"keep_registered":false,"ec2":'
               '{"instance_id":"i-0123","local_hostname":"ip-10-0-0-5","local_ipv4":"10.0.0.5","public_hostname":"",'
               '"public_ipv4":"","availability_zone":"us-east-1a"}}',
    "exited": '{"v":1,"host":"host-a","container_id":"' + CONTAINER + '","container_name":"/web","phase":"exited",'
              '"status":"DOWN","services":[],"keep_registered":true,"ec2":null}',
}
PYDANTIC = TypeAdapter(ContainerState)


@pytest.mark.parametrize(("state", "stored"), [(RUNNING, "running"), (EXITED, "exited")])
def test_the_wire_format_is_unchanged(state: ContainerState, stored: str) -> None:
    assert state_json(state) == STORED_BEFORE[stored]
    assert parse_state(STORED_BEFORE[stored]) == state


def derived_states() -> list[ContainerState]:
    states = []
    for case in sorted(path.stem for path in FIXTURES.glob("*.json")):
        for rules in (RULES, INTERNAL, replace(RULES, name_from_image=True, tags="t,ü")):
            document = inspect(case, labels={"SERVICE_EUREKA_METADATA_X": "a\u00e9\"\\\u0007\u2029"})
            services = derive(document, rules, network_container=inspect("network_owner")).services
            for status in InstanceStatus:
                states.append(ContainerState(host="host-a", container_id=document["Id"],
                                             container_name=document["Name"], phase=Phase.RUNNING, status=status,
                                             services=services, ec2=EC2 if status is InstanceStatus.UP else None))
    return states


def test_what_the_watcher_writes_is_what_pydantic_writes_for_every_derived_state() -> None:
    states = derived_states()
    assert len(states) > 200 and any(state.services for state in states)
    for state in states:
        written = state_json(state)
        assert written == PYDANTIC.dump_json(state).decode()
        assert parse_state(written) == state


@pytest.mark.parametrize(("change", "culprit"), [
    ({"v": 2}, "v"),
    ({"surprise": 1}, "surprise"),
    ({"status": "SLEEPY"}, "status"),
    ({"services": [{"name": "web"}]}, "services.0"),
])
def test_a_state_of_another_version_or_shape_is_refused(change: dict[str, object], culprit: str) -> None:
    doc = {**json.loads(state_json(RUNNING)), **change}
    with pytest.raises(ValueError, match=culprit):
        parse_state(json.dumps(doc))


def test_the_watcher_loads_no_pydantic_docker_sdk_or_requests() -> None:
    loaded = subprocess.run([sys.executable, "-c", "import sys, watcher.__main__; print(sorted(sys.modules))"],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout
    modules = set(eval(loaded))  # noqa: S307 - our own child's repr of a list of names
    assert not modules & {"pydantic", "docker", "requests", "urllib3", "boto3", "flask"}
