"""
The workloads of the side-by-side benchmark (issue 8), each run against one registry on loopback:
chunked uploads in fixed-size PATCHes, small-request load with wrk and ab, catalog paging over a
layout written straight into the root, and skopeo image round trips. Monolithic and streamed
uploads and downloads are bench/memory.py's.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from memory import MiB, absolute, startUpload, withQuery

from registryd.registry import layout
from tests.support.layouts import MEDIA_TYPE_CONFIG, MEDIA_TYPE_LAYER, MEDIA_TYPE_MANIFEST, OCILayout
from tests.support.processes import RegistryProcess

ACCEPT_MANIFESTS = ",".join([MEDIA_TYPE_MANIFEST, "application/vnd.docker.distribution.manifest.v2+json"])


def _connection(registry: RegistryProcess) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", registry.port, timeout=120)


def patchUpload(
    registry: RegistryProcess, path: Path, digest: str, repository: str, chunkSize: int = 16 * MiB
) -> float:
    """
    Upload a file in PATCHes of C{chunkSize} over one keep-alive connection, then PUT the digest.

    The body goes from the file to the socket with sendfile, so the client costs almost nothing.
    """
    started = time.monotonic()
    location = startUpload(registry, repository)
    size = path.stat().st_size
    connection = _connection(registry)
    try:
        with open(path, "rb") as blob:
            offset = 0
            while offset < size:
                length = min(chunkSize, size - offset)
                target = urllib.parse.urlsplit(location)
                connection.putrequest("PATCH", target.path + ("?" + target.query if target.query else ""))
                connection.putheader("Content-Type", "application/octet-stream")
                connection.putheader("Content-Length", str(length))
                connection.putheader("Content-Range", f"{offset}-{offset + length - 1}")
                connection.endheaders()
                connection.sock.sendfile(blob, offset, length)
                response = connection.getresponse()
                response.read()
                if response.status != 202:
                    raise SystemExit(f"PATCH answered {response.status}")
                location = absolute(registry.url, response.headers["Location"])
                offset += length
        target = urllib.parse.urlsplit(withQuery(location, digest=digest))
        connection.request("PUT", target.path + "?" + target.query, headers={"Content-Length": "0"})
        response = connection.getresponse()
        response.read()
        if response.status != 201:
            raise SystemExit(f"closing PUT answered {response.status}")
    finally:
        connection.close()
    return time.monotonic() - started


def removeBlob(root: Path, digest: str) -> None:
    """Take a blob's bytes out of a registry's root, so the next upload of it stores it again."""
    shutil.rmtree(root / layout.blobDirectory(digest).lstrip("/"), ignore_errors=True)


def pushBlob(registry: RegistryProcess, repository: str, data: bytes) -> str:
    """Push a small blob monolithically; return its digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    location = startUpload(registry, repository)
    request = urllib.request.Request(withQuery(location, digest=digest), data=data, method="PUT")
    request.add_header("Content-Type", "application/octet-stream")
    with urllib.request.urlopen(request, timeout=30) as response:
        if response.status != 201:
            raise SystemExit(f"blob PUT answered {response.status}")
    return digest


def pushSmallImage(registry: RegistryProcess, repository: str, tag: str) -> dict:
    """Push a one-layer image (a 1 MiB layer); return the digests of its manifest, config and layer."""
    layer = hashlib.sha256(b"registryd bench").digest() * (MiB // 32)
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode()
    layerDigest = pushBlob(registry, repository, layer)
    configDigest = pushBlob(registry, repository, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_MANIFEST,
            "config": {"mediaType": MEDIA_TYPE_CONFIG, "digest": configDigest, "size": len(config)},
            "layers": [{"mediaType": MEDIA_TYPE_LAYER, "digest": layerDigest, "size": len(layer)}],
        }
    ).encode()
    request = urllib.request.Request(
        f"{registry.url}/v2/{repository}/manifests/{tag}", data=manifest, method="PUT"
    )
    request.add_header("Content-Type", MEDIA_TYPE_MANIFEST)
    with urllib.request.urlopen(request, timeout=30) as response:
        if response.status != 201:
            raise SystemExit(f"manifest PUT answered {response.status}")
    return {
        "manifest": "sha256:" + hashlib.sha256(manifest).hexdigest(),
        "config": configDigest,
        "layer": layerDigest,
    }


# -- small requests -------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _milliseconds(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def _load(command: list[str], url: str, headers: dict[str, str]) -> str:
    """Run a load tool with these headers against url; its report."""
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    return subprocess.run(command + [url], capture_output=True, text=True, check=True).stdout


def _count(pattern: str, output: str) -> int:
    found = re.search(pattern, output)
    return int(found.group(1)) if found else 0


def wrk(url: str, connections: int, seconds: float, threads: int, headers: dict[str, str]) -> dict:
    """Load a GET URL with wrk; requests/s, p99 (ms) and the answers that were not 2xx."""
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    output = _load(command, url, headers)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p99_ms": _milliseconds(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1)),
        "errors": _count(r"Non-2xx or 3xx responses:\s+(\d+)", output),
    }


def abHead(url: str, connections: int, seconds: float, headers: dict[str, str]) -> dict:
    """Load a HEAD URL with ab (keep-alive); requests/s, p99 (ms) and the failed or non-2xx answers."""
    command = [
        "ab",
        "-q",
        "-k",
        "-i",
        "-c",
        str(connections),
        "-t",
        str(max(1, round(seconds))),
        "-n",
        "10000000",
    ]
    output = _load(command, url, headers)
    return {
        "rps": float(re.search(r"Requests per second:\s+([\d.]+)", output).group(1)),
        "p99_ms": float(re.search(r"^\s+99%\s+(\d+)", output, re.M).group(1)),
        "errors": _count(r"Non-2xx responses:\s+(\d+)", output) + _count(r"Failed requests:\s+(\d+)", output),
    }


def headLoad(url: str, connections: int, seconds: float, headers: dict[str, str]) -> dict:
    """Load a HEAD URL over HTTP/1.1 keep-alive with bench/headload.py (in a process of its own)."""
    command = [sys.executable, str(Path(__file__).with_name("headload.py")), url]
    command += ["--connections", str(connections), "--seconds", str(seconds)]
    if headers:
        raise ValueError("headload.py sends no extra headers")
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


# -- catalog --------------------------------------------------------------------------------------


def _writeLink(root: Path, path: str, digest: str) -> None:
    full = root / path.lstrip("/")
    full.parent.mkdir(parents=True, exist_ok=True)
    full.write_text(digest)


def writeRepositories(root: Path, names: list[str], image: dict, tag: str = "latest") -> None:
    """
    Write repositories holding an already stored image straight into a root, as distribution lays
    them out (a revision, a tag, and the config and layer links), instead of pushing each one.
    """
    manifest = image["manifest"]
    for name in names:
        _writeLink(root, layout.revisionLinkPath(name, manifest), manifest)
        _writeLink(root, layout.tagCurrentLinkPath(name, tag), manifest)
        _writeLink(root, layout.tagIndexLinkPath(name, tag, manifest), manifest)
        for digest in (image["config"], image["layer"]):
            _writeLink(root, layout.layerLinkPath(name, digest), digest)


def catalogPages(registry: RegistryProcess, pageSize: int = 1000) -> tuple[int, int, float]:
    """Page through the whole catalog; return (pages, repositories, seconds)."""
    connection = _connection(registry)
    target = f"/v2/_catalog?n={pageSize}"
    pages = repositories = 0
    started = time.monotonic()
    try:
        while target:
            connection.request("GET", target)
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise SystemExit(f"catalog answered {response.status}: {body[:200]!r}")
            pages += 1
            repositories += len(json.loads(body)["repositories"])
            link = response.headers.get("Link")
            target = re.match(r"<([^>]+)>", link).group(1) if link else ""
    finally:
        connection.close()
    return pages, repositories, time.monotonic() - started


# -- skopeo ---------------------------------------------------------------------------------------


def buildImage(directory: Path, layerSizes: list[int], seed: int) -> Path:
    """An OCI layout with one image (random layers of these sizes) tagged C{bench}."""
    OCILayout(directory, seed=seed).addImage(layerSizes, tag="bench")
    return directory


def _skopeo(*arguments: str, home: Path) -> None:
    environment = dict(os.environ, HOME=str(home), XDG_DATA_HOME=str(home / "data"))
    command = ["skopeo", "--insecure-policy", "copy", "--quiet", *arguments]
    result = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    if result.returncode != 0:
        raise SystemExit(f"skopeo {' '.join(arguments)} failed: {result.stderr.strip()}")


def skopeoRoundTrip(registry: RegistryProcess, image: Path, repository: str) -> tuple[float, float]:
    """Push an OCI layout image with skopeo, then pull it into a fresh layout; (push s, pull s)."""
    with tempfile.TemporaryDirectory(prefix="registryd-bench-skopeo-") as scratch:
        home = Path(scratch) / "home"
        home.mkdir()
        reference = f"docker://{registry.host}/{repository}:bench"
        started = time.monotonic()
        _skopeo("--dest-tls-verify=false", f"oci:{image}:bench", reference, home=home)
        pushed = time.monotonic()
        _skopeo("--src-tls-verify=false", reference, f"oci:{scratch}/pulled:bench", home=home)
        return pushed - started, time.monotonic() - pushed
