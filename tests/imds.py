"""A loopback stand-in for the EC2 instance metadata service (IMDSv2): a token first, then metadata."""

from __future__ import annotations

import secrets
from typing import Mapping

from tests.stub_http import Answer, LoopbackServer

DEFAULT_METADATA = {
    "instance-id": "i-0123456789abcdef0",
    "local-hostname": "ip-10-0-0-5.ec2.internal",
    "local-ipv4": "10.0.0.5",
    "public-hostname": "ec2-3-4-5-6.compute-1.amazonaws.com",
    "public-ipv4": "3.4.5.6",
    "placement/availability-zone": "us-east-1a",
}


class MetadataService(LoopbackServer):
    def __init__(self) -> None:
        super().__init__()
        self.url = self.base_url
        self.metadata = dict(DEFAULT_METADATA)
        self.tokens: set[str] = set()

    def answer(self, method: str, path: str, headers: Mapping[str, str]) -> Answer:
        if method == "PUT":
            if path != "/latest/api/token" or not headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                return Answer(400, content_type="text/plain")
            token = secrets.token_hex(8)
            self.tokens.add(token)
            return Answer(200, token, content_type="text/plain")
        if headers.get("X-aws-ec2-metadata-token") not in self.tokens:
            return Answer(401, content_type="text/plain")
        key = path.removeprefix("/latest/meta-data/")
        if key not in self.metadata:
            return Answer(404, content_type="text/plain")
        return Answer(200, self.metadata[key], content_type="text/plain")

    def __enter__(self) -> MetadataService:
        super().__enter__()
        return self
