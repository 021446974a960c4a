"""The watcher's IMDSv2 client against a loopback stand-in of the metadata service."""

from __future__ import annotations

import pytest

from tests.imds import MetadataService
from tests.support import free_port
from watcher.ec2 import Ec2MetadataClient, Ec2MetadataError


def test_reads_every_field_with_a_token() -> None:
    with MetadataService() as service:
        metadata = Ec2MetadataClient(service.url).metadata()
    assert metadata.instance_id == "i-0123456789abcdef0"
    assert metadata.local_hostname == "ip-10-0-0-5.ec2.internal"
    assert metadata.local_ipv4 == "10.0.0.5"
    assert metadata.public_hostname == "ec2-3-4-5-6.compute-1.amazonaws.com"
    assert metadata.public_ipv4 == "3.4.5.6"
    assert metadata.availability_zone == "us-east-1a"
    assert service.requests[0] == "PUT /latest/api/token"


def test_answers_are_cached() -> None:
    with MetadataService() as service:
        client = Ec2MetadataClient(service.url)
        client.metadata()
        asked = len(service.requests)
        client.metadata()
        assert len(service.requests) == asked


def test_no_public_address_is_fine() -> None:
    with MetadataService() as service:
        del service.metadata["public-ipv4"], service.metadata["public-hostname"]
        metadata = Ec2MetadataClient(service.url).metadata()
    assert (metadata.public_ipv4, metadata.public_hostname) == ("", "")


def test_an_expired_token_is_renewed() -> None:
    with MetadataService() as service:
        client = Ec2MetadataClient(service.url)
        client._current_token(fresh=False)
        service.tokens.clear()
        assert client.metadata().instance_id == "i-0123456789abcdef0"


@pytest.mark.parametrize(("change", "culprit"), [
    ({"local-ipv4": "ten.0.0.5"}, "local-ipv4"),
    ({"public-ipv4": "3.4.5"}, "public-ipv4"),
    ({"instance-id": ""}, "instance-id"),
    ({"local-hostname": "bad\x01name"}, "local-hostname"),
])
def test_bad_answers_are_named(change: dict[str, str], culprit: str) -> None:
    with MetadataService() as service:
        service.metadata.update(change)
        with pytest.raises(Ec2MetadataError, match=culprit):
            Ec2MetadataClient(service.url).metadata()


def test_missing_field_is_named() -> None:
    with MetadataService() as service:
        del service.metadata["placement/availability-zone"]
        with pytest.raises(Ec2MetadataError, match="placement/availability-zone: HTTP 404"):
            Ec2MetadataClient(service.url).metadata()


def test_unreachable_service_fails_fast_and_the_failure_is_cached() -> None:
    client = Ec2MetadataClient(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(Ec2MetadataError, match="ConnectionError"):
        client.metadata()
    with pytest.raises(Ec2MetadataError):
        client.metadata()
