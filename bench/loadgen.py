"""`python -m bench.loadgen`: how many requests a second the recording Eureka can take.

Run in a process of its own: a fixed number of heartbeat-shaped PUTs over a few keep-alive connections,
each connection sending its next request when the previous answer is in (as the workers' clients do).
Prints one JSON line: requests, seconds, requests per second. The client is Python too, so the figure is
a lower bound of the server's capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time


async def _connection(port: int, count: int, index: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (f"PUT /eureka/apps/LOADGEN/load-{index} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Content-Length: 0\r\n\r\n").encode()
    for _ in range(count):
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"unexpected answer {head[:40]!r}")
    writer.close()
    await writer.wait_closed()


async def _load(port: int, requests: int, connections: int) -> float:
    started = time.perf_counter()
    await asyncio.gather(*(_connection(port, requests // connections, index) for index in range(connections)))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(prog="loadgen")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    sent = args.requests // args.connections * args.connections
    seconds = asyncio.run(_load(args.port, sent, args.connections))
    print(json.dumps({"requests": sent, "seconds": seconds, "per_second": sent / seconds}))


if __name__ == "__main__":
    main()
