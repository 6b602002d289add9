"""
Raw HTTP for blob-upload end-to-end tests: streamed request bodies (sized or chunked), reproducible
pseudo-random blobs readable from any offset, and registryd processes that share an C{http.secret}.
"""

from __future__ import annotations

import hashlib
import http.client
import random
import socket
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

from tests.support.http import Response
from tests.support.processes import (
    RegistryProcess,
    freePort,
    registrydOn,
    writeConfig,
)

MiB = 1 << 20

#: Reproducible blobs are made of blocks of this size, each from its own seeded generator.
BLOCK = MiB


class PatternBlob:
    """
    C{size} pseudo-random bytes that can be regenerated from any offset, so a test can resume an
    upload where the registry says it stopped without keeping the blob in memory.
    """

    def __init__(self, seed: int, size: int) -> None:
        self.seed = seed
        self.size = size
        self._digest: str | None = None

    def _block(self, number: int) -> bytes:
        data = random.Random(self.seed * 1_000_003 + number).randbytes(BLOCK)
        return data[: max(0, min(BLOCK, self.size - number * BLOCK))]

    def chunks(self, start: int = 0, end: int | None = None, chunkSize: int = 256 * 1024) -> Iterator[bytes]:
        """The bytes from C{start} up to (not including) C{end}, in pieces of at most C{chunkSize}."""
        end = self.size if end is None else min(end, self.size)
        offset = start
        while offset < end:
            number, within = divmod(offset, BLOCK)
            block = self._block(number)
            stop = min(len(block), within + (end - offset))
            while within < stop:
                piece = block[within : min(stop, within + chunkSize)]
                yield piece
                within += len(piece)
                offset += len(piece)

    def digest(self) -> str:
        """The sha256 digest string of the whole blob."""
        if self._digest is None:
            hasher = hashlib.sha256()
            for chunk in self.chunks(chunkSize=BLOCK):
                hasher.update(chunk)
            self._digest = "sha256:" + hasher.hexdigest()
        return self._digest


def wrongDigest(digest: str) -> str:
    """A well-formed digest that differs from C{digest} in its last hex digit."""
    last = digest[-1]
    return digest[:-1] + ("0" if last != "0" else "1")


def send(
    url: str,
    method: str,
    headers: dict[str, str] | None = None,
    body: bytes | Iterable[bytes] | None = None,
    chunked: bool = False,
    timeout: float = 120.0,
) -> Response:
    """
    One request over a fresh connection; an iterable body is streamed as it is produced, with
    C{Transfer-Encoding: chunked} when C{chunked} (else the caller gives Content-Length).
    """
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    target = parts.path + ("?" + parts.query if parts.query else "")
    try:
        connection.request(method, target, body=body, headers=headers or {}, encode_chunked=chunked)
        response = connection.getresponse()
        return Response(response.status, response.headers, response.read())
    finally:
        connection.close()


def relocate(location: str, registry: RegistryProcess) -> str:
    """The upload URL C{location} (absolute or a path) aimed at C{registry} instead."""
    parts = urlsplit(location)
    return registry.url + parts.path + ("?" + parts.query if parts.query else "")


def streamDigest(url: str, timeout: float = 120.0) -> tuple[int, str, int]:
    """GET C{url} and hash the body as it arrives; return (status, sha256 digest, length)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request("GET", parts.path + ("?" + parts.query if parts.query else ""))
        response = connection.getresponse()
        hasher = hashlib.sha256()
        length = 0
        while chunk := response.read(MiB):
            hasher.update(chunk)
            length += len(chunk)
        return response.status, "sha256:" + hasher.hexdigest(), length
    finally:
        connection.close()


def fileDigest(path: Path) -> str:
    """The sha256 digest string of a file, read in pieces."""
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MiB):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


def abandonedRequest(url: str, method: str, headers: dict[str, str], body: Iterable[bytes]) -> int:
    """
    Send a request's head and part of its body, then drop the connection without waiting for an
    answer, as a client that crashes or loses its network does. Returns how many body bytes went out.
    """
    parts = urlsplit(url)
    target = parts.path + ("?" + parts.query if parts.query else "")
    head = f"{method} {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    sent = 0
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as connection:
        connection.sendall(head.encode("latin-1"))
        for chunk in body:
            connection.sendall(chunk)
            sent += len(chunk)
        # Give the server time to take in what was sent before the connection goes away.
        time.sleep(0.5)
    return sent


def rangeEnd(response: Response) -> int:
    """The last offset of an upload's C{Range: 0-<end>} header."""
    start, _, end = response.headers["Range"].partition("-")
    if start != "0":
        raise ValueError(f"unexpected Range {response.headers['Range']!r}")
    return int(end)


def registrydWithSecret(
    workDirectory: Path, rootDirectory: Path, secret: str, port: int | None = None
) -> RegistryProcess:
    """A registryd process (not started) serving C{rootDirectory} with C{http.secret}, on C{port} if given."""
    port = freePort() if port is None else port
    config = writeConfig(
        workDirectory, rootDirectory, port, extra={"http": {"addr": f"127.0.0.1:{port}", "secret": secret}}
    )
    return registrydOn(workDirectory, config, port)
