"""The keep-alive HTTP client over real loopback connections: reuse, a server closing idle connections,
one connection per thread, gzip, failures named by kind."""

from __future__ import annotations

import gzip
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shared.httpclient import HttpClient, HttpFailure
from tests.support import free_port


class Recorder:
    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        # Close each connection after this many requests (0: keep it open).
        self.close_after = 0
        self.gzip = False
        self.lock = threading.Lock()


@contextmanager
def server() -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            with recorder.lock:
                recorder.connections += 1
            self.served = 0

        def _respond(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with recorder.lock:
                recorder.requests.append((self.command, self.path, dict(self.headers), body))
            payload = b'{"ok": true}'
            self.send_response(200)
            if recorder.gzip:
                payload = gzip.compress(payload)
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            self.served += 1
            if recorder.close_after and self.served >= recorder.close_after:
                # Closed without a "Connection: close": as a server that drops idle keep-alive connections.
                self.close_connection = True

        do_GET = do_PUT = do_POST = do_DELETE = _respond  # noqa: N815 - http.server's naming

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as url:
        yield f"{url}/eureka", recorder


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """`handler` answering on a free loopback port, in background threads: the server's URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_requests_share_one_kept_alive_connection() -> None:
    with server() as (url, recorder):
        client = HttpClient(url, 2.0, headers={"Accept": "application/json"}, auth=("reg@corp", "p:w"))
        for index in range(5):
            response = client.request("PUT", f"/apps/WEB/{index}?status=UP")
            assert response.status == 200 and response.json() == {"ok": True}
        assert recorder.connections == 1
        method, path, headers, _ = recorder.requests[-1]
        assert (method, path) == ("PUT", "/eureka/apps/WEB/4?status=UP")
        assert headers["Authorization"] == "Basic cmVnQGNvcnA6cDp3"
        assert headers["Accept"] == "application/json" and "gzip" in headers["Accept-Encoding"]


def test_a_connection_the_server_closed_is_opened_again_and_the_request_sent_once() -> None:
    with server() as (url, recorder):
        recorder.close_after = 1
        client = HttpClient(url, 2.0)
        for index in range(3):
            assert client.request("POST", "/apps/WEB", f'{{"n": {index}}}'.encode()).status == 200
        assert [body for *_, body in recorder.requests] == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']
        assert recorder.connections == 3


def test_each_thread_has_its_own_connection() -> None:
    with server() as (url, recorder):
        client = HttpClient(url, 2.0)
        threads = [threading.Thread(target=lambda: [client.request("GET", "/apps") for _ in range(3)])
                   for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(recorder.requests) == 9
        assert recorder.connections == 3


def test_a_gzip_answer_is_decoded() -> None:
    with server() as (url, recorder):
        recorder.gzip = True
        assert HttpClient(url, 2.0).request("GET", "/apps").json() == {"ok": True}


def test_failures_are_named_by_kind() -> None:
    with pytest.raises(HttpFailure) as refused:
        HttpClient(f"http://127.0.0.1:{free_port()}", 1.0).request("GET", "/")
    assert refused.value.kind == "ConnectionError"

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    try:
        with pytest.raises(HttpFailure) as timed_out:
            HttpClient(f"http://127.0.0.1:{silent.getsockname()[1]}", 0.3).request("GET", "/")
        assert timed_out.value.kind == "Timeout"
    finally:
        silent.close()


def test_only_http_urls() -> None:
    with pytest.raises(ValueError, match="not an http"):
        HttpClient("ftp://example.com", 1.0)


def test_a_stream_is_read_line_by_line_until_closed_from_another_thread() -> None:
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for line in (b'{"n": 1}\n', b'{"n": 2}\n'):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.flush()
            release.wait(10)  # open and silent, as an event stream between events

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as url:
        try:
            stream = HttpClient(url, 1.0).stream("GET", "/events")
            assert stream.status == 200
            lines = stream.lines()
            assert [next(lines), next(lines)] == [b'{"n": 1}\n', b'{"n": 2}\n']
            # No read timeout: the stream waits for more, longer than the client's timeout, until closed.
            threading.Timer(1.5, stream.close).start()
            assert list(lines) == []
        finally:
            release.set()
