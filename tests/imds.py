"""A loopback stand-in for the EC2 instance metadata service (IMDSv2): token first, then metadata."""

from __future__ import annotations

import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_METADATA = {
    "instance-id": "i-0123456789abcdef0",
    "local-hostname": "ip-10-0-0-5.ec2.internal",
    "local-ipv4": "10.0.0.5",
    "public-hostname": "ec2-3-4-5-6.compute-1.amazonaws.com",
    "public-ipv4": "3.4.5.6",
    "placement/availability-zone": "us-east-1a",
}


class MetadataService:
    def __init__(self, metadata: dict[str, str] | None = None) -> None:
        self.metadata = dict(DEFAULT_METADATA if metadata is None else metadata)
        self.tokens: set[str] = set()
        self.requests: list[str] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
                service.requests.append(f"PUT {self.path}")
                if self.path != "/latest/api/token" or not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                    return self._answer(400, "")
                token = secrets.token_hex(8)
                service.tokens.add(token)
                self._answer(200, token)

            def do_GET(self) -> None:  # noqa: N802
                service.requests.append(f"GET {self.path}")
                if self.headers.get("X-aws-ec2-metadata-token") not in service.tokens:
                    return self._answer(401, "")
                key = self.path.removeprefix("/latest/meta-data/")
                if key not in service.metadata:
                    return self._answer(404, "")
                self._answer(200, service.metadata[key])

            def _answer(self, status: int, body: str) -> None:
                payload = body.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> MetadataService:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
