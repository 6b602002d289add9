#!/usr/bin/env python3
"""
Side-by-side benchmark of registryd and Debian's distribution (docker-registry 2.8), issue 8:

    python bench/sidebyside.py                 # full run: 1 GiB blobs, 4 GiB memory figure, 3 runs
    python bench/sidebyside.py --quick         # smoke check: small sizes, 1 run
    python bench/sidebyside.py --runs 5 --json bench/results/sidebyside-<date>.json

Both servers run on loopback at the same time, each on a fresh filesystem root with the same config
(only the port differs), and every measurement alternates between them (registryd, distribution,
registryd, ...) so a busy machine slows both alike and the ratios stay meaningful. For each figure it
keeps the median of the runs, the server's CPU seconds (utime+stime) and its peak RSS, prints a table
(figure, registryd, distribution, ratio) and writes the whole result as JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

import workloads  # noqa: E402 - after the path set-up above
from memory import MiB, download, generate, parseSize, upload  # noqa: E402
from procstats import Meter  # noqa: E402

from tests.support.processes import RegistryProcess, distributionProcess, registrydProcess  # noqa: E402

SERVERS = ("registryd", "distribution")
#: registryd's http.workers: processes sharing the listening socket (the best count on 2 cores).
WORKERS = 2


@dataclass
class Figure:
    """One row of the table: what was measured, in which unit, and each server's runs."""

    key: str
    title: str
    unit: str
    higherIsBetter: bool
    runs: dict[str, list[dict]] = field(default_factory=lambda: {name: [] for name in SERVERS})

    def add(self, server: str, value: float, meter: Meter | None = None, **extra: float) -> None:
        run = {"value": value, **extra}
        if meter is not None:
            run["cpu_s"] = round(meter.cpu, 3)
            run["peak_rss_mib"] = meter.peakMiB
        self.runs[server].append(run)

    def summary(self, server: str) -> dict:
        runs = self.runs[server]
        result: dict = {"runs": runs}
        if not runs:
            return result
        for name in runs[0]:
            values = [run[name] for run in runs if isinstance(run.get(name), int | float)]
            if not values:
                continue
            # Peaks are peaks: the highest of the runs; everything else: the median.
            result[name] = max(values) if name == "peak_rss_mib" else statistics.median(values)
        return result

    def ratio(self) -> float | None:
        ours, theirs = self.summary("registryd").get("value"), self.summary("distribution").get("value")
        if not ours or not theirs:
            return None
        return ours / theirs

    def asJSON(self) -> dict:
        ratio = self.ratio()
        return {
            "key": self.key,
            "figure": self.title,
            "unit": self.unit,
            "higher_is_better": self.higherIsBetter,
            "ratio_registryd_over_distribution": round(ratio, 3) if ratio else None,
            **{server: self.summary(server) for server in SERVERS},
        }


class Bench:
    """The two servers, the files they are fed, and the figures gathered so far."""

    def __init__(self, options: argparse.Namespace, work: Path) -> None:
        self.options = options
        self.work = work
        self.figures: dict[str, Figure] = {}
        self.roots = {server: work / server / "root" for server in SERVERS}
        binary = shutil.which("docker-registry") or "docker-registry"
        self.servers: dict[str, RegistryProcess] = {
            "registryd": registrydProcess(work / "registryd", self.roots["registryd"]),
            "distribution": distributionProcess(work / "distribution", self.roots["distribution"], binary),
        }
        # http.workers through the loader's environment override (the config file stays the same).
        self.servers["registryd"].env["REGISTRY_HTTP_WORKERS"] = str(options.workers)

    def figure(self, key: str, title: str, unit: str, higherIsBetter: bool = True) -> Figure:
        if key not in self.figures:
            self.figures[key] = Figure(key, title, unit, higherIsBetter)
        return self.figures[key]

    def order(self, run: int) -> list[str]:
        """Both servers' names, the one going first alternating from run to run."""
        return list(SERVERS) if run % 2 == 0 else list(reversed(SERVERS))

    def each(self, run: int) -> list[tuple[str, RegistryProcess]]:
        """Both servers, the one going first alternating from run to run."""
        return [(server, self.servers[server]) for server in self.order(run)]

    def measure(self, server: str, function: Callable, *args: object) -> tuple[Meter, object]:
        """Run function(*args) while metering the server's process."""
        with Meter(self.servers[server].pid) as meter:
            result = function(*args)
        return meter, result

    def say(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    # -- figures 1-3 --------------------------------------------------------------------------------

    def uploads(self, blob: Path, digest: str) -> None:
        size = blob.stat().st_size
        megabytes = size / 1e6
        label = f"{size / MiB:.0f} MiB"
        monolithic = self.figure("1", f"{label} monolithic upload (curl -T)", "MB/s")
        patches = self.figure("2a", f"{label} chunked upload, 16 MiB PATCHes", "MB/s")
        streamed = self.figure("2b", f"{label} one streamed PATCH (chunked)", "MB/s")
        downloads = self.figure("3", f"{label} blob download", "MB/s")
        # Page cache: each upload's bytes go into page-cache pages. On a VM that hands free memory
        # back to its host (virtio-balloon free page reporting, as here), pages that stayed free for
        # a few seconds cost ~2 us each to touch again: writing 1 GiB into such pages takes 2.3 s of
        # kernel time instead of 0.2 s (dd if=/dev/zero bs=1M count=1024 on a growing page cache
        # against one that reuses just-freed pages). Which kind an upload got depended on how long
        # ago the previous blob was removed, so both servers' figures swung by 2x from run to run.
        # So each upload is preceded by the removal of that server's previous copy of the blob (the
        # kernel reuses those pages at once), and each server makes one unmeasured upload first.
        for registry in self.servers.values():
            upload(registry, blob, digest, "put", "bench/warm-up")
        for run in range(self.options.runs):
            for server, registry in self.each(run):
                repository = f"bench/blob-{run}"
                workloads.removeBlob(self.roots[server], digest)
                meter, seconds = self.measure(server, upload, registry, blob, digest, "put", repository)
                monolithic.add(server, megabytes / seconds, meter, seconds=seconds)
                meter, seconds = self.measure(server, download, registry, digest, size, False, repository)
                downloads.add(server, megabytes / seconds, meter, seconds=seconds)
                self.say(
                    f"run {run} {server}: monolithic {monolithic.runs[server][-1]['value']:.0f} MB/s, "
                    f"download {downloads.runs[server][-1]['value']:.0f} MB/s"
                )
            for server, registry in self.each(run):
                repository = f"bench/patch-{run}"
                workloads.removeBlob(self.roots[server], digest)
                meter, seconds = self.measure(
                    server, workloads.patchUpload, registry, blob, digest, repository
                )
                patches.add(server, megabytes / seconds, meter, seconds=seconds)
            for server, registry in self.each(run):
                repository = f"bench/stream-{run}"
                workloads.removeBlob(self.roots[server], digest)
                meter, seconds = self.measure(
                    server, upload, registry, blob, digest, "patch-chunked", repository
                )
                streamed.add(server, megabytes / seconds, meter, seconds=seconds)
                self.say(
                    f"run {run} {server}: 16 MiB PATCHes {patches.runs[server][-1]['value']:.0f} MB/s, "
                    f"streamed {streamed.runs[server][-1]['value']:.0f} MB/s"
                )
        for server in SERVERS:
            workloads.removeBlob(self.roots[server], digest)

    # -- figure 4 -----------------------------------------------------------------------------------

    def pushSmallImage(self) -> None:
        """The image that figure 4 asks for and the catalog's repositories refer to, in both registries."""
        images = [
            workloads.pushSmallImage(registry, "bench/small", "latest") for registry in self.servers.values()
        ]
        assert images[0] == images[1], images
        self.smallImage = images[0]

    def smallRequests(self) -> None:
        image = self.smallImage
        accept = {"Accept": workloads.ACCEPT_MANIFESTS}
        blob = f"/v2/bench/small/blobs/{image['layer']}"
        targets = [
            ("4a", "manifest GET by tag", "GET", "/v2/bench/small/manifests/latest", accept),
            ("4b", "manifest GET by digest", "GET", f"/v2/bench/small/manifests/{image['manifest']}", accept),
            (
                "4c",
                "blob HEAD (HTTP/1.1, bench/headload.py)",
                "HEAD",
                f"/v2/bench/small/blobs/{image['layer']}",
                {},
            ),
            # ab speaks HTTP/1.0, whose connections twisted.web closes after each answer: this row
            # measures connection set-up as much as the request (kept for comparison).
            ("4c-ab", "blob HEAD (ab -k, HTTP/1.0)", "AB", blob, {}),
            ("4d", "tags list", "GET", "/v2/bench/small/tags/list", {}),
            ("4e", "GET /v2/", "GET", "/v2/", {}),
        ]
        options = self.options
        for run in range(options.runs):
            for key, title, method, path, headers in targets:
                figure = self.figure(key, f"{title}, {options.connections} connections", "req/s")
                for server, registry in self.each(run):
                    url = registry.url + path
                    if method in ("HEAD", "AB"):
                        load = workloads.headLoad if method == "HEAD" else workloads.abHead
                        meter, result = self.measure(
                            server, load, url, options.connections, options.seconds, headers
                        )
                    else:
                        meter, result = self.measure(
                            server,
                            workloads.wrk,
                            url,
                            options.connections,
                            options.seconds,
                            options.wrk_threads,
                            headers,
                        )
                    errors = result["errors"]
                    if errors:
                        self.say(f"warning: {server} {title}: {result}")
                    figure.add(server, result["rps"], meter, p99_ms=result["p99_ms"], errors=errors)
                    self.say(
                        f"run {run} {server}: {title} {result['rps']:.0f} req/s p99 {result['p99_ms']} ms"
                    )

    # -- figure 5 -----------------------------------------------------------------------------------

    def catalog(self) -> None:
        written = 0
        for target in self.options.catalog:
            names = [f"bench/catalog/repo-{number:05d}" for number in range(written, target)]
            for server in SERVERS:
                workloads.writeRepositories(self.roots[server], names, self.smallImage)
            written = target
            figure = self.figure(
                f"5-{target}", f"catalog of {target:,} repositories, n=1000", "ms/page", higherIsBetter=False
            )
            for run in range(self.options.runs):
                for server, registry in self.each(run):
                    meter, (pages, repositories, seconds) = self.measure(
                        server, workloads.catalogPages, registry
                    )
                    figure.add(server, 1000 * seconds / pages, meter, pages=pages, repositories=repositories)
                    self.say(
                        f"run {run} {server}: catalog {target}: {pages} pages, "
                        f"{1000 * seconds / pages:.1f} ms/page"
                    )

    # -- figure 6 -----------------------------------------------------------------------------------

    def skopeo(self) -> None:
        layers = [self.options.image_size // 5] * 5
        push = self.figure("6a", f"skopeo push, 5 layers, {sum(layers) / MiB:.0f} MiB", "s", False)
        pull = self.figure("6b", f"skopeo pull, 5 layers, {sum(layers) / MiB:.0f} MiB", "s", False)
        for run in range(self.options.runs):
            # A new image each run: nothing of it is in either registry or in skopeo's caches yet.
            image = workloads.buildImage(self.work / f"image-{run}", layers, seed=run)
            for server, registry in self.each(run):
                with Meter(registry.pid) as meter:
                    pushSeconds, pullSeconds = workloads.skopeoRoundTrip(
                        registry, image, f"bench/image-{run}"
                    )
                push.add(server, pushSeconds, meter)
                pull.add(server, pullSeconds)
                self.say(f"run {run} {server}: skopeo push {pushSeconds:.2f} s, pull {pullSeconds:.2f} s")
            shutil.rmtree(image, ignore_errors=True)

    # -- figure 7 -----------------------------------------------------------------------------------

    def memory(self, blob: Path, digest: str) -> None:
        size = blob.stat().st_size
        label = f"{size / MiB / 1024:.0f} GiB" if size >= 1 << 30 else f"{size / MiB:.0f} MiB"
        # The memory a transfer costs, measured on registryd as it runs by default (http.workers 1):
        # with worker processes each would add its own idle interpreter to the sum.
        servers = dict(self.servers)
        single = None
        if self.options.workers > 1:
            single = registrydProcess(self.work / "registryd-one-process", self.roots["registryd"])
            single.start()
            servers["registryd"] = single
            label += " (registryd: http.workers 1)"
        up = self.figure("7a", f"peak RSS, {label} upload", "MiB", False)
        down = self.figure("7b", f"peak RSS, {label} download", "MiB", False)
        try:
            for run in range(self.options.big_runs):
                for server in self.order(run):
                    registry = servers[server]
                    with Meter(registry.pid) as meter:
                        seconds = upload(registry, blob, digest, "put", "bench/big")
                    up.add(server, meter.peakMiB, meter, MBps=size / 1e6 / seconds)
                    with Meter(registry.pid) as meter:
                        seconds = download(registry, digest, size, False, "bench/big")
                    down.add(server, meter.peakMiB, meter, MBps=size / 1e6 / seconds)
                    workloads.removeBlob(self.roots[server], digest)
                    self.say(
                        f"run {run} {server}: {label} peak RSS up {up.runs[server][-1]['value']} MiB, "
                        f"down {down.runs[server][-1]['value']} MiB"
                    )
        finally:
            if single is not None:
                single.stop()


def sparseFile(path: Path, size: int) -> str:
    """A file of C{size} zero bytes that takes no disk space; return its sha256 digest."""
    import hashlib

    with open(path, "wb") as f:
        f.truncate(size)
    hasher = hashlib.sha256()
    zeros = bytes(4 * MiB)
    remaining = size
    while remaining:
        piece = min(remaining, len(zeros))
        hasher.update(zeros[:piece] if piece < len(zeros) else zeros)
        remaining -= piece
    return "sha256:" + hasher.hexdigest()


def machine() -> dict:
    """What the figures were measured on."""
    model = ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    distribution = subprocess.run(
        [shutil.which("docker-registry") or "docker-registry", "--version"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "memory_MiB": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // MiB,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "distribution": distribution,
        "loadavg_start": os.getloadavg(),
    }


def formatValue(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}"


def table(figures: list[Figure]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| # | figure | unit | registryd | distribution | ratio r/d | p99 ms r / d | CPU s r / d "
        "| peak RSS MiB r / d |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for figure in figures:
        ours, theirs = figure.summary("registryd"), figure.summary("distribution")
        ratio = figure.ratio()
        better = "↑" if figure.higherIsBetter else "↓"

        def pair(name: str, ours: dict = ours, theirs: dict = theirs) -> str:
            if name not in ours and name not in theirs:
                return ""
            return f"{formatValue(ours.get(name))} / {formatValue(theirs.get(name))}"

        lines.append(
            f"| {figure.key} | {figure.title} | {figure.unit} {better} | {formatValue(ours.get('value'))} | "
            f"{formatValue(theirs.get('value'))} | {f'{ratio:.2f}×' if ratio else '-'} | {pair('p99_ms')} | "
            f"{pair('cpu_s')} | {pair('peak_rss_mib')} |"
        )
    return "\n".join(lines)


def parseArguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke check: small sizes, short loads, 1 run")
    parser.add_argument("--runs", type=int, help="runs per figure (default 3; 1 with --quick)")
    parser.add_argument(
        "--json", help="where to write the results (default bench/results/sidebyside-<date>.json)"
    )
    parser.add_argument("--size", help="blob size for figures 1-3 (default 1G; 64M with --quick)")
    parser.add_argument("--big-size", help="blob size for figure 7 (default 4G; 256M with --quick)")
    parser.add_argument("--big-runs", type=int, default=1, help="runs of figure 7 (default 1: it is a peak)")
    parser.add_argument("--image-size", help="skopeo image size, 5 layers (default 200M; 20M with --quick)")
    parser.add_argument("--seconds", type=float, help="length of each small-request load (default 10; 3)")
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections (default 64)")
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument(
        "--workers", type=int, default=WORKERS, help=f"registryd's http.workers (default {WORKERS})"
    )
    parser.add_argument("--catalog", help="repository counts for figure 5 (default 1000,10000)")
    parser.add_argument(
        "--only",
        help="comma-separated figure groups to run: uploads,small,catalog,skopeo,memory (default all)",
    )
    parser.add_argument("--workdir", help="scratch directory (default: a new temp dir, removed at the end)")
    options = parser.parse_args(argv)
    quick = options.quick
    options.runs = options.runs or (1 if quick else 3)
    options.size = parseSize(options.size or ("64M" if quick else "1G"))
    options.big_size = parseSize(options.big_size or ("256M" if quick else "4G"))
    options.image_size = parseSize(options.image_size or ("20M" if quick else "200M"))
    options.seconds = options.seconds or (3 if quick else 10)
    options.catalog = [int(n) for n in (options.catalog or "1000,10000").split(",")]
    options.only = set((options.only or "uploads,small,catalog,skopeo,memory").split(","))
    return options


def main(argv: list[str] | None = None) -> int:
    options = parseArguments(argv)
    for tool in ("curl", "wrk", "ab", "skopeo", "docker-registry"):
        if shutil.which(tool) is None:
            raise SystemExit(
                f"{tool} is needed (apt-get install curl wrk apache2-utils skopeo docker-registry)"
            )
    work = Path(options.workdir or tempfile.mkdtemp(prefix="registryd-sidebyside-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    info = machine()
    bench = Bench(options, work)
    try:
        for registry in bench.servers.values():
            registry.start()
        time.sleep(0.5)
        if "uploads" in options.only:
            blob = work / "blob.bin"
            bench.say(f"generating {options.size / MiB:.0f} MiB of random bytes ...")
            digest = generate(blob, options.size)
            bench.uploads(blob, digest)
            blob.unlink()
        bench.pushSmallImage()
        if "small" in options.only:
            bench.smallRequests()
        if "catalog" in options.only:
            bench.catalog()
        if "skopeo" in options.only:
            bench.skopeo()
        if "memory" in options.only:
            big = work / "big.bin"
            digest = sparseFile(big, options.big_size)
            bench.memory(big, digest)
            big.unlink()
    except BaseException:
        for server, registry in bench.servers.items():
            bench.say(f"--- {server} log ---\n{registry.logTail(30)}")
        raise
    finally:
        for registry in bench.servers.values():
            registry.stop()
        if not options.workdir:
            shutil.rmtree(work, ignore_errors=True)

    figures = [bench.figures[key] for key in sorted(bench.figures, key=_order)]
    info["loadavg_end"] = os.getloadavg()
    result = {
        "date": datetime.datetime.fromtimestamp(started, datetime.UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.time() - started),
        "machine": info,
        "options": {
            key: sorted(value) if isinstance(value, set) else value for key, value in vars(options).items()
        },
        "figures": [figure.asJSON() for figure in figures],
    }
    print(table(figures))
    print(
        f"\nmachine: {info['cpu']}, {info['cpus']} CPUs; load average {info['loadavg_start'][0]:.2f} "
        f"at start, {info['loadavg_end'][0]:.2f} at end; {info['distribution']}"
    )
    output = Path(
        options.json
        or BENCH / "results" / f"sidebyside-{datetime.date.today()}{'-quick' if options.quick else ''}.json"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {output}")
    return 0


def _order(key: str) -> tuple[int, str]:
    number, _, rest = key.partition("-")
    return int(number[0]), number[1:] + rest.zfill(6)


if __name__ == "__main__":
    sys.exit(main())
