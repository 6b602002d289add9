#!/usr/bin/env python3
"""
Streaming benchmark: push one big blob to a registry on loopback and pull it back, while sampling the
server's resident memory from /proc/PID/status. Run by hand, not by CI:

    python bench/memory.py                      # registryd, 2 GiB, monolithic PUT
    python bench/memory.py --mode patch-chunked # one PATCH with Transfer-Encoding: chunked, as podman sends
    python bench/memory.py --server distribution --size 1G

The blob is generated into a file first and streamed by curl (C{-T}), so the client never holds it in
memory. Prints MB/s for upload and download and the server's RSS (before, peak per phase, kernel
high-water mark), and writes the same figures as JSON (default: bench/results/memory-<server>-<mode>.json).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.support.processes import (  # noqa: E402 - the harness lives in the source tree
    RegistryProcess,
    distributionProcess,
    registrydProcess,
)

MiB = 1 << 20
REPOSITORY = "bench/blob"


def parseSize(text: str) -> int:
    """A size such as 2G, 512M or 1048576, in bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def generate(path: Path, size: int) -> str:
    """Write C{size} pseudo-random bytes to C{path} a block at a time; return their sha256 digest."""
    hasher = hashlib.sha256()
    block = bytearray(os.urandom(4 * MiB))
    written = 0
    with open(path, "wb") as f:
        while written < size:
            # Vary every block a little so no two are the same.
            block[:8] = written.to_bytes(8, "big")
            piece = bytes(block[: min(len(block), size - written)])
            f.write(piece)
            hasher.update(piece)
            written += len(piece)
    return "sha256:" + hasher.hexdigest()


def rssKiB(pid: int, field: str = "VmRSS") -> int:
    """A memory figure of a process from /proc/PID/status, in KiB (0 when unreadable)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Sampler(threading.Thread):
    """Samples a process's RSS every C{interval} seconds, keeping the peak of the current phase."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.phase = "idle"
        self.peaks: dict[str, int] = {}
        self.samples: list[tuple[float, str, int]] = []
        self._halt = threading.Event()
        self._start = time.monotonic()

    def run(self) -> None:
        while not self._halt.is_set():
            value = rssKiB(self.pid)
            phase = self.phase
            self.peaks[phase] = max(self.peaks.get(phase, 0), value)
            self.samples.append((round(time.monotonic() - self._start, 3), phase, value))
            time.sleep(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def absolute(base: str, location: str) -> str:
    """Resolve a Location header against the registry's base URL."""
    return urllib.parse.urljoin(base + "/", location)


def withQuery(url: str, **params: str) -> str:
    """Add query parameters to a URL that may already carry some."""
    separator = "&" if urllib.parse.urlsplit(url).query else "?"
    return url + separator + urllib.parse.urlencode(params)


def startUpload(registry: RegistryProcess, repository: str = REPOSITORY) -> str:
    """POST a new upload session; return its absolute URL."""
    request = urllib.request.Request(
        f"{registry.url}/v2/{repository}/blobs/uploads/", data=b"", method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        if response.status != 202:
            raise SystemExit(f"POST upload answered {response.status}")
        return absolute(registry.url, response.headers["Location"])


def curl(*arguments: str) -> tuple[int, float]:
    """Run curl quietly; return the HTTP status it reports and the seconds it took."""
    command = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Expect:", *arguments]
    started = time.monotonic()
    result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"curl failed ({result.returncode}): {result.stderr.strip()}")
    return int(result.stdout.strip() or 0), elapsed


def upload(
    registry: RegistryProcess, path: Path, digest: str, mode: str, repository: str = REPOSITORY
) -> float:
    """Upload the file as one blob; return the seconds it took (session start included)."""
    started = time.monotonic()
    location = startUpload(registry, repository)
    if mode == "put":
        status, _ = curl(
            "-X",
            "PUT",
            "-T",
            str(path),
            "-H",
            "Content-Type: application/octet-stream",
            withQuery(location, digest=digest),
        )
        if status != 201:
            raise SystemExit(f"monolithic PUT answered {status}")
    else:
        # Like podman: the whole layer in one PATCH with a chunked body, then an empty PUT.
        command = [
            "curl",
            "-sS",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-X",
            "PATCH",
            "-T",
            str(path),
            "-H",
            "Expect:",
            "-H",
            "Transfer-Encoding: chunked",
            "-H",
            "Content-Type: application/octet-stream",
            location,
        ]
        result = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
        )
        headers = {}
        statusLine = result.stdout.splitlines()[0] if result.stdout else ""
        for line in result.stdout.splitlines()[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if " 202" not in statusLine:
            raise SystemExit(f"chunked PATCH answered {statusLine!r} {result.stderr.strip()}")
        location = absolute(registry.url, headers.get("location", location))
        status, _ = curl("-X", "PUT", "-H", "Content-Length: 0", withQuery(location, digest=digest))
        if status != 201:
            raise SystemExit(f"closing PUT answered {status}")
    return time.monotonic() - started


def download(
    registry: RegistryProcess, digest: str, size: int, verify: bool, repository: str = REPOSITORY
) -> float:
    """Download the blob; check its size (and digest with C{verify}); return the seconds it took."""
    url = f"{registry.url}/v2/{repository}/blobs/{digest}"
    if not verify:
        command = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", url]
        started = time.monotonic()
        result = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
        )
        elapsed = time.monotonic() - started
        status, received = result.stdout.split()
        if status != "200" or int(received) != size:
            raise SystemExit(f"download answered {status} with {received} bytes, expected {size}")
        return elapsed
    hasher = hashlib.sha256()
    received = 0
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=60) as response:
        while chunk := response.read(4 * MiB):
            hasher.update(chunk)
            received += len(chunk)
    elapsed = time.monotonic() - started
    if received != size or "sha256:" + hasher.hexdigest() != digest:
        raise SystemExit(f"download differs: {received} bytes, sha256:{hasher.hexdigest()}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark once and report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="2G", help="blob size (default 2G)")
    parser.add_argument("--server", choices=["registryd", "distribution"], default="registryd")
    parser.add_argument("--mode", choices=["put", "patch-chunked"], default="put")
    parser.add_argument("--verify", action="store_true", help="hash the download (costs client CPU)")
    parser.add_argument(
        "--workdir", help="where the blob file and the registry root go (default: a temp dir)"
    )
    parser.add_argument("--output", help="JSON file to write")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    options = parser.parse_args(argv)
    if shutil.which("curl") is None:
        raise SystemExit("curl is needed (apt-get install curl)")

    size = parseSize(options.size)
    work = Path(options.workdir or tempfile.mkdtemp(prefix="registryd-bench-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    blobPath = work / "blob.bin"
    print(f"generating {size / MiB:.0f} MiB in {blobPath} ...", flush=True)
    digest = generate(blobPath, size)

    root = work / "root"
    if options.server == "registryd":
        registry = registrydProcess(work / "server", root)
    else:
        registry = distributionProcess(
            work / "server", root, shutil.which("docker-registry") or "docker-registry"
        )
    registry.start()
    sampler = Sampler(registry.pid)
    sampler.start()
    try:
        time.sleep(0.5)
        baseline = rssKiB(registry.pid)
        sampler.phase = "upload"
        uploadSeconds = upload(registry, blobPath, digest, options.mode)
        sampler.phase = "download"
        downloadSeconds = download(registry, digest, size, options.verify)
        sampler.phase = "after"
        time.sleep(0.2)
        highWater = rssKiB(registry.pid, "VmHWM")
    except BaseException:
        print(registry.logTail(), file=sys.stderr)
        raise
    finally:
        try:
            sampler.stop()
        finally:
            registry.stop()

    megabytes = size / 1e6
    result = {
        "server": options.server,
        "mode": options.mode,
        "size_bytes": size,
        "digest": digest,
        "upload_seconds": round(uploadSeconds, 3),
        "upload_MBps": round(megabytes / uploadSeconds, 1),
        "download_seconds": round(downloadSeconds, 3),
        "download_MBps": round(megabytes / downloadSeconds, 1),
        "rss_baseline_MiB": round(baseline / 1024, 1),
        "rss_peak_upload_MiB": round(sampler.peaks.get("upload", 0) / 1024, 1),
        "rss_peak_download_MiB": round(sampler.peaks.get("download", 0) / 1024, 1),
        "rss_high_water_MiB": round(highWater / 1024, 1),
        "samples": len(sampler.samples),
        "cpus": os.cpu_count(),
    }
    print(
        f"{options.server} {options.mode}: {size / MiB:.0f} MiB\n"
        f"  upload   {result['upload_MBps']:8.1f} MB/s  ({result['upload_seconds']} s)\n"
        f"  download {result['download_MBps']:8.1f} MB/s  ({result['download_seconds']} s)\n"
        f"  RSS MiB  baseline {result['rss_baseline_MiB']}, peak upload {result['rss_peak_upload_MiB']}, "
        f"peak download {result['rss_peak_download_MiB']}, high-water {result['rss_high_water_MiB']}"
    )
    output = Path(
        options.output or REPO_ROOT / "bench" / "results" / f"memory-{options.server}-{options.mode}.json"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {output}")
    if not options.keep and not options.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
