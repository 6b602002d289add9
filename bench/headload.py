"""
A small HTTP/1.1 keep-alive load generator for HEAD requests, which wrk mis-counts (it waits for
a body as long as Content-Length) and ab sends as HTTP/1.0 (twisted.web closes HTTP/1.0
connections after each answer, so ab -k would measure connection set-up, not the request; real
registry clients speak HTTP/1.1). asyncio protocols, one request in flight per connection.

    python bench/headload.py URL [--connections 64] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import urllib.parse


class _Connection(asyncio.Protocol):
    """Sends the request, waits for the end of the answer's headers, sends it again, until told to stop."""

    def __init__(self, request: bytes, latencies: list[float], deadline: float, done: asyncio.Future) -> None:
        self.request = request
        self.latencies = latencies
        self.deadline = deadline
        self.done = done
        self.buffer = b""
        self.errors = 0
        self.sentAt = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self._send()

    def _send(self) -> None:
        self.sentAt = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) != -1:
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            now = time.perf_counter()
            self.latencies.append(now - self.sentAt)
            if not head.startswith((b"HTTP/1.1 2", b"HTTP/1.0 2")):
                self.errors += 1
            if now >= self.deadline:
                self.transport.close()
                return
            self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(self.errors if time.perf_counter() >= self.deadline else self.errors + 1)


async def _run(url: str, connections: int, seconds: float, headers: dict[str, str]) -> dict:
    parts = urllib.parse.urlsplit(url)
    target = parts.path + ("?" + parts.query if parts.query else "")
    lines = [f"HEAD {target} HTTP/1.1", f"Host: {parts.netloc}"] + [f"{k}: {v}" for k, v in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    started = time.perf_counter()
    deadline = started + seconds
    finished = []
    for _ in range(connections):
        done = loop.create_future()
        await loop.create_connection(
            lambda done=done: _Connection(request, latencies, deadline, done), parts.hostname, parts.port
        )
        finished.append(done)
    errors = sum(await asyncio.gather(*finished))
    elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0
    return {
        "rps": len(latencies) / elapsed,
        "p99_ms": 1000 * p99,
        "errors": errors,
        "requests": len(latencies),
    }


def headLoad(url: str, connections: int, seconds: float, headers: dict[str, str] | None = None) -> dict:
    """Load a URL with HEAD requests; requests/s, p99 (ms) and the answers that were not 2xx."""
    return asyncio.run(_run(url, connections, seconds, headers or {}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10)
    options = parser.parse_args()
    print(json.dumps(headLoad(options.url, options.connections, options.seconds)))
