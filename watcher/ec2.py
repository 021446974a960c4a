"""The EC2 instance metadata service (IMDSv2), asked by the watcher about the host it runs on.

Only the watcher can ask: the answer describes the machine the request comes from. Answers are cached
(they change only if the instance is stopped and started), failures too, briefly, so a host that is
not on EC2 is not asked again for every container.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time

from shared.httpclient import HttpClient, HttpFailure, Response
from shared.models import Ec2Metadata

log = logging.getLogger(__name__)

DEFAULT_URL = "http://169.254.169.254"
TOKEN_TTL_SECONDS = 21600
CACHE_SECONDS = 600
FAILURE_CACHE_SECONDS = 60
TIMEOUT_SECONDS = (1.0, 2.0)  # connect, read


class Ec2MetadataError(Exception):
    """The metadata service could not be reached, or answered something unusable (named in the message)."""


class Ec2MetadataClient:
    def __init__(self, base_url: str = DEFAULT_URL) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = HttpClient(self.base_url, TIMEOUT_SECONDS)
        self._lock = threading.Lock()
        self._token: tuple[str, float] | None = None
        self._cached: tuple[Ec2Metadata | Ec2MetadataError, float] | None = None

    def metadata(self) -> Ec2Metadata:
        """The host's metadata, from cache when fresh. Raises Ec2MetadataError."""
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now >= self._cached[1]:
                try:
                    self._cached = (self._fetch(), now + CACHE_SECONDS)
                except Ec2MetadataError as err:
                    log.error("EC2 metadata: %s", err)
                    self._cached = (err, now + FAILURE_CACHE_SECONDS)
            answer = self._cached[0]
        if isinstance(answer, Ec2MetadataError):
            raise answer
        return answer

    def _fetch(self) -> Ec2Metadata:
        fields = {
            "instance_id": self._get("instance-id"),
            "local_hostname": self._get("local-hostname"),
            "local_ipv4": self._ip("local-ipv4", self._get("local-ipv4")),
            "public_hostname": self._get("public-hostname", optional=True),
            "public_ipv4": self._ip("public-ipv4", self._get("public-ipv4", optional=True)),
            "availability_zone": self._get("placement/availability-zone"),
        }
        for name in ("instance_id", "local_hostname", "availability_zone"):
            if not fields[name]:
                raise Ec2MetadataError(f"{self.base_url}: {name.replace('_', '-')} is empty")
        return Ec2Metadata(**fields)

    def _get(self, path: str, optional: bool = False) -> str:
        url = f"/latest/meta-data/{path}"
        response = self._call("GET", url, {"X-aws-ec2-metadata-token": self._current_token(fresh=False)})
        if response.status == 401:  # the token expired early (instance restarted, clock jump)
            response = self._call("GET", url, {"X-aws-ec2-metadata-token": self._current_token(fresh=True)})
        if response.status == 404 and optional:
            return ""
        if response.status != 200:
            raise Ec2MetadataError(f"GET {self.base_url}{url}: HTTP {response.status}")
        try:
            value = response.body.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise Ec2MetadataError(f"{path}: answer is not UTF-8") from None
        if not value.isprintable() or len(value) > 255:
            raise Ec2MetadataError(f"{path}: unusable answer {value[:60]!r}")
        return value

    def _current_token(self, fresh: bool) -> str:
        now = time.monotonic()
        if fresh or self._token is None or now >= self._token[1]:
            response = self._call("PUT", "/latest/api/token",
                                  {"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_SECONDS)})
            if response.status != 200 or not response.text.strip():
                raise Ec2MetadataError(f"PUT {self.base_url}/latest/api/token: HTTP {response.status}")
            self._token = (response.text.strip(), now + TOKEN_TTL_SECONDS - 60)
        return self._token[0]

    def _call(self, method: str, path: str, headers: dict[str, str]) -> Response:
        # Never through a proxy (HttpClient uses none): the service is link-local.
        try:
            return self._http.request(method, path, headers=headers)
        except HttpFailure as err:
            raise Ec2MetadataError(f"{method} {self.base_url}{path}: {err.kind}") from None

    @staticmethod
    def _ip(name: str, value: str) -> str:
        if value:
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise Ec2MetadataError(f"{name}: {value[:60]!r} is not an IP address") from None
        return value
