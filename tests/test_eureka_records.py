"""Eureka records through the whole system, read back the ways consumers read them (SPEC section 4)."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ElementTree
from types import SimpleNamespace

import docker
from py_eureka_client.eureka_client import EurekaClient

from tests.conftest import HOST, HOST_IP, Components, run_web, start_system
from tests.imds import MetadataService
from tests.support import DevEureka, DockerEngine, free_port, wait_until

HOSTILE_VALUE = "<script>alert('x')</script> & \"quoted\" ]]> &amp;"


def test_record_reads_back_the_same_in_json_xml_and_py_eureka_client(system: SimpleNamespace) -> None:
    port = free_port()
    container = run_web(system.docker, "web1", port, environment={
        "SERVICE_EUREKA_METADATA_BRANCH": "feature/x", "SERVICE_EUREKA_METADATA_hudl.routes": "/a,/b",
        "SERVICE_EUREKA_LEASEINFO_DURATIONINSECS": "45", "SERVICE_EUREKA_VIP": "web.service"})
    instance_id = f"{HOST_IP}_{port}"
    as_json = wait_until(lambda: system.eureka.instance("WEB", instance_id), 2, "WEB in Eureka")

    expected_metadata = {"branch": "feature/x", "hudl.routes": "/a,/b", "is-container": "true",
                         "container-id": container.id, "container-name": "/web1", "docker-host": HOST}
    assert as_json["metadata"] == expected_metadata
    assert (as_json["vipAddress"], as_json["leaseInfo"]["durationInSecs"]) == ("web.service", 45)

    root = ElementTree.fromstring(system.eureka.apps_xml_listing(instance_id))
    [element] = [e for e in root.iter("instance") if e.findtext("instanceId") == instance_id]
    assert element.findtext("app") == "WEB"
    assert element.findtext("ipAddr") == HOST_IP
    assert element.findtext("vipAddress") == "web.service"
    assert (element.find("port").text, element.find("port").get("enabled")) == (str(port), "true")
    assert element.find("dataCenterInfo").get("class") == "com.netflix.appinfo.AmazonInfo"
    assert element.findtext("dataCenterInfo/metadata/instance-id") == instance_id
    assert {child.tag: child.text for child in element.find("metadata")} == expected_metadata

    client = EurekaClient(eureka_server=system.eureka.url, should_register=False, should_discover=True)
    asyncio.run(asyncio.wait_for(client.start(), timeout=15))
    try:
        discovered = client.applications.get_application("WEB").get_instance(instance_id)
        assert (discovered.ipAddr, discovered.port.port, discovered.vipAddress) == (HOST_IP, port, "web.service")
        assert discovered.metadata == expected_metadata
    finally:
        asyncio.run(asyncio.wait_for(client.stop(), timeout=15))


def test_hostile_metadata_cannot_make_the_registry_unreadable(system: SimpleNamespace) -> None:
    hostile_port, plain_port = free_port(), free_port()
    hostile = system.docker.containers.run(
        "local/busybox", ["httpd", "-f", "-p", "80", "-h", "/"], name="hostile", detach=True,
        ports={"80/tcp": hostile_port}, labels={
            "SERVICE_NAME": "hostile",
            "SERVICE_EUREKA_METADATA_1bad<key x": "v",
            "SERVICE_EUREKA_METADATA_a:b": "namespaced",
            "SERVICE_EUREKA_METADATA_note": HOSTILE_VALUE,
        })
    run_web(system.docker, "plain", plain_port, environment={"SERVICE_EUREKA_METADATA_BRANCH": "main"})
    wait_until(lambda: system.eureka.instance("HOSTILE", f"{HOST_IP}_{hostile_port}"), 2, "HOSTILE in Eureka")
    wait_until(lambda: system.eureka.instance("WEB", f"{HOST_IP}_{plain_port}"), 2, "WEB in Eureka")

    listing = system.eureka.apps_xml_listing(f"{HOST_IP}_{hostile_port}", f"{HOST_IP}_{plain_port}")
    root = ElementTree.fromstring(listing)  # raises if the document is not XML
    metadata = {e.findtext("app"): {child.tag: child.text for child in e.find("metadata")}
                for e in root.iter("instance")}
    assert metadata["HOSTILE"]["note"] == HOSTILE_VALUE
    assert not {"1bad<key x", "a:b"} & set(metadata["HOSTILE"])
    assert metadata["WEB"]["branch"] == "main"

    registrar_log = next(p for p in system.components.started if p.name == "registrar").log()
    for key in ("eureka_metadata_1bad<key x", "eureka_metadata_a:b"):
        assert f"container hostile ({hostile.id[:12]}): attribute {key}: metadata key" in registrar_log


def test_status_changes_do_not_re_register(system: SimpleNamespace) -> None:
    port = free_port()
    container = run_web(system.docker, "web1", port)
    instance_id = f"{HOST_IP}_{port}"
    registered = wait_until(lambda: system.eureka.instance("WEB", instance_id), 2, "WEB in Eureka")

    container.pause()
    down = wait_until(lambda: (i := system.eureka.instance("WEB", instance_id))["status"] == "DOWN" and i, 2, "DOWN")
    container.unpause()
    up = wait_until(lambda: (i := system.eureka.instance("WEB", instance_id))["status"] == "UP" and i, 2, "UP")

    for later in (down, up):
        assert later["leaseInfo"]["registrationTimestamp"] == registered["leaseInfo"]["registrationTimestamp"]
        assert later["actionType"] == "MODIFIED"
    assert down["overriddenStatus"] == "DOWN"


def test_first_eureka_refusing_connections_fails_over_to_the_second(
        components: Components, eureka: DevEureka, docker_engine: DockerEngine,
        docker_client: docker.DockerClient, redis_url: str) -> None:
    env = {"EUREKA_URL": f"http://127.0.0.1:{free_port()}/eureka,{eureka.url}", "DOCKER_HOST": docker_engine.host}
    start_system(components, env, redis_url)

    port = free_port()
    run_web(docker_client, "web1", port, environment={"SERVICE_EUREKA_LEASEINFO_RENEWALINTERVALINSECS": "1"})
    instance_id = f"{HOST_IP}_{port}"
    first = wait_until(lambda: eureka.instance("WEB", instance_id), 3, "registration through the second URL")
    wait_until(lambda: eureka.instance("WEB", instance_id)["leaseInfo"]["lastRenewalTimestamp"]
               > first["leaseInfo"]["lastRenewalTimestamp"], 5, "a heartbeat through the second URL")


def test_auto_populate_takes_the_hosts_ec2_metadata(
        components: Components, eureka: DevEureka, docker_engine: DockerEngine,
        docker_client: docker.DockerClient, redis_url: str) -> None:
    env = {"EUREKA_URL": eureka.url, "DOCKER_HOST": docker_engine.host}
    with MetadataService() as metadata_service:
        watcher = start_system(components, env, redis_url, "-ec2-metadata-url", metadata_service.url)
        port, plain_port = free_port(), free_port()
        run_web(docker_client, "web1", port, environment={"SERVICE_EUREKA_DATACENTERINFO_AUTO_POPULATE": "true",
                                                          "SERVICE_EUREKA_REGISTER_AWS_PUBLIC_IP": "true"})
        run_web(docker_client, "plain", plain_port)

        instance = wait_until(lambda: eureka.instance("WEB", f"ip-10-0-0-5.ec2.internal_{port}"), 3,
                              "WEB registered under the EC2 local hostname")
        assert (instance["hostName"], instance["ipAddr"], instance["vipAddress"]) == (
            "ip-10-0-0-5.ec2.internal", "3.4.5.6", "3.4.5.6")
        assert instance["metadata"]["aws-instance-id"] == "i-0123456789abcdef0"
        assert instance["dataCenterInfo"]["metadata"]["availability-zone"] == "us-east-1a"
        assert instance["dataCenterInfo"]["metadata"]["instance-id"] == f"ip-10-0-0-5.ec2.internal_{port}"
        assert wait_until(lambda: eureka.instance("WEB", f"{HOST_IP}_{plain_port}"), 3, "the plain container")
        token_requests = [r for r in metadata_service.requests if r.startswith("PUT")]
        assert len(token_requests) == 1  # asked once, then cached
    assert "EC2 metadata" not in watcher.log()


def test_auto_populate_without_a_metadata_service_registers_with_the_defaults(
        components: Components, eureka: DevEureka, docker_engine: DockerEngine,
        docker_client: docker.DockerClient, redis_url: str) -> None:
    env = {"EUREKA_URL": eureka.url, "DOCKER_HOST": docker_engine.host}
    watcher = start_system(components, env, redis_url, "-ec2-metadata-url", f"http://127.0.0.1:{free_port()}")
    port = free_port()
    run_web(docker_client, "web1", port, environment={"SERVICE_EUREKA_DATACENTERINFO_AUTO_POPULATE": "true"})

    instance = wait_until(lambda: eureka.instance("WEB", f"{HOST_IP}_{port}"), 5, "WEB registered with defaults")
    assert "aws-instance-id" not in instance["metadata"]
    assert "EC2 metadata: GET" in watcher.log() or "EC2 metadata: PUT" in watcher.log()
    registrar_log = next(p for p in components.started if p.name == "registrar").log()
    assert "attribute eureka_datacenterinfo_auto_populate: no EC2 metadata from the host" in registrar_log
