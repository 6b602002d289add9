"""
An OpenStack Swift all-in-one (tempauth) started on loopback for the swift driver's tests.

Debian's swift packages provide the servers; this builds rings and configurations in a temporary
directory, starts memcached and the account, container, object and proxy servers on free ports,
waits for C{/healthcheck}, and stops them by process id. Further proxies with other auth filters
(Keystone's, see C{tests/support/keystone.py}) share the cluster through L{SwiftAllInOne.startProxy}.
C{.ci/run} installs the packages.
"""

from __future__ import annotations

import getpass
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.support.processes import freePort
from tests.support.servers import sharedServer, spawn, stopProcess, systemPythonEnvironment
from tests.support.tools import requireTool

#: The tempauth account, user and key the proxy is configured with (auth v1).
USERNAME = "test:tester"
PASSWORD = "testing"
_PACKAGES = "swift swift-proxy swift-account swift-container swift-object memcached"
_SERVERS = ("account", "container", "object")
#: The proxy's tempauth filter, knowing the one user above.
TEMPAUTH_SECTION = "[filter:tempauth]\nuse = egg:swift#tempauth\nuser_test_tester = testing .admin\n"


class SwiftAllInOne:
    """memcached plus the four Swift servers, everything below one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ports = {name: freePort() for name in (*_SERVERS, "proxy", "memcached")}
        self.processes: dict[str, subprocess.Popen] = {}

    @property
    def authURL(self) -> str:
        """The tempauth v1 endpoint."""
        return f"http://127.0.0.1:{self.ports['proxy']}/auth/v1.0"

    @property
    def proxyURL(self) -> str:
        """The proxy's base URL."""
        return f"http://127.0.0.1:{self.ports['proxy']}"

    def _configure(self) -> None:
        """Write swift.conf, the three rings and the four server configurations."""
        ringBuilder = requireTool("swift-ring-builder", _PACKAGES)
        for name in ("swift-proxy-server", "swift-account-server", "swift-object-server", "memcached"):
            requireTool(name, _PACKAGES)
        user = getpass.getuser()
        devices = self.directory / "devices"
        (devices / "d1").mkdir(parents=True, exist_ok=True)
        (self.directory / "cache").mkdir(exist_ok=True)
        (self.directory / "run").mkdir(exist_ok=True)
        (self.directory / "swift.conf").write_text(
            "[swift-hash]\nswift_hash_path_suffix = registryd-tests\nswift_hash_path_prefix = registryd\n\n"
            "[storage-policy:0]\nname = Policy-0\ndefault = yes\n"
        )
        for name in _SERVERS:
            builder = str(self.directory / f"{name}.builder")
            for arguments in (
                ["create", "10", "1", "1"],
                ["add", f"r1z1-127.0.0.1:{self.ports[name]}/d1", "100"],
                ["rebalance"],
            ):
                subprocess.run(
                    [ringBuilder, builder, *arguments],
                    check=arguments[0] != "rebalance",
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    cwd=self.directory,
                    env=systemPythonEnvironment(),
                )
            common = (
                f"[DEFAULT]\nbind_ip = 127.0.0.1\nbind_port = {self.ports[name]}\nworkers = 0\n"
                f"user = {user}\nswift_dir = {self.directory}\ndevices = {devices}\nmount_check = false\n"
                f"disable_fallocate = true\nrecon_cache_path = {self.directory / 'cache'}\n"
                "log_level = WARNING\n\n"
                f"[pipeline:main]\npipeline = healthcheck {name}-server\n\n"
                f"[app:{name}-server]\nuse = egg:swift#{name}\n\n"
                "[filter:healthcheck]\nuse = egg:swift#healthcheck\n"
            )
            (self.directory / f"{name}-server.conf").write_text(common)
        (self.directory / "proxy-server.conf").write_text(
            self.proxyConfig(self.ports["proxy"], "tempauth", TEMPAUTH_SECTION)
        )

    def proxyConfig(self, port: int, auth: str, authSections: str) -> str:
        """
        A proxy server configuration on C{port} in front of this cluster's rings: the pipeline with
        C{auth} (filter names) where authentication goes, and C{authSections} defining those filters.
        """
        user = getpass.getuser()
        memcached = f"127.0.0.1:{self.ports['memcached']}"
        return (
            f"[DEFAULT]\nbind_ip = 127.0.0.1\nbind_port = {port}\nworkers = 0\nuser = {user}\n"
            f"swift_dir = {self.directory}\nlog_level = WARNING\n\n"
            "[pipeline:main]\npipeline = catch_errors gatekeeper healthcheck proxy-logging cache "
            f"listing_formats bulk tempurl {auth} copy slo dlo proxy-logging proxy-server\n\n"
            "[app:proxy-server]\nuse = egg:swift#proxy\naccount_autocreate = true\n\n"
            f"{authSections}\n"
            f"[filter:cache]\nuse = egg:swift#memcache\nmemcache_servers = {memcached}\n\n"
            "[filter:slo]\nuse = egg:swift#slo\nrate_limit_segments_per_sec = 0\n\n"
            "[filter:dlo]\nuse = egg:swift#dlo\nrate_limit_segments_per_sec = 0\n\n"
            "[filter:catch_errors]\nuse = egg:swift#catch_errors\n\n"
            "[filter:gatekeeper]\nuse = egg:swift#gatekeeper\n\n"
            "[filter:healthcheck]\nuse = egg:swift#healthcheck\n\n"
            "[filter:proxy-logging]\nuse = egg:swift#proxy_logging\n\n"
            "[filter:listing_formats]\nuse = egg:swift#listing_formats\n\n"
            "[filter:bulk]\nuse = egg:swift#bulk\n\n"
            "[filter:tempurl]\nuse = egg:swift#tempurl\n\n"
            "[filter:copy]\nuse = egg:swift#copy\n"
        )

    def _spawn(self, name: str, command: list[str]) -> None:
        """Start one process in its own session, its output in NAME.log."""
        self.processes[name] = spawn(
            command, self.directory / f"{name}.log", cwd=self.directory, env=systemPythonEnvironment()
        )

    def start(self, timeout: float = 60.0) -> None:
        """Configure, start everything, and wait until the proxy and each server answer /healthcheck."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._configure()
        memcached = requireTool("memcached", _PACKAGES)
        self._spawn(
            "memcached",
            [memcached, "-l", "127.0.0.1", "-p", str(self.ports["memcached"]), "-U", "0", "-m", "64"]
            + (["-u", "root"] if os.geteuid() == 0 else []),
        )
        for name in (*_SERVERS, "proxy"):
            program = requireTool(f"swift-{name}-server", _PACKAGES)
            self._spawn(name, [program, str(self.directory / f"{name}-server.conf")])
        self._waitHealthy([*_SERVERS, "proxy"], timeout)

    def startProxy(self, name: str, auth: str, authSections: str, port: int, timeout: float = 60.0) -> None:
        """Start another proxy server (see L{proxyConfig}) named C{name} on C{port}, sharing this cluster."""
        self.ports[name] = port
        (self.directory / f"{name}-server.conf").write_text(self.proxyConfig(port, auth, authSections))
        program = requireTool("swift-proxy-server", _PACKAGES)
        self._spawn(name, [program, str(self.directory / f"{name}-server.conf")])
        self._waitHealthy([name], timeout)

    def stopServer(self, name: str) -> None:
        """Stop one of the processes started here (an extra proxy)."""
        process = self.processes.pop(name, None)
        if process is not None:
            stopProcess(process, 10, group=True)

    def _waitHealthy(self, pending: list[str], timeout: float) -> None:
        """Wait until each named server answers /healthcheck; stop everything if one exits or is too slow."""
        deadline = time.monotonic() + timeout
        while pending:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"{name} exited with {process.returncode}: {self.logTail()}")
            name = pending[0]
            try:
                url = f"http://127.0.0.1:{self.ports[name]}/healthcheck"
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        pending.pop(0)
                        continue
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"swift did not become healthy within {timeout}s: {self.logTail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop every process started here, by process group id."""
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            stopProcess(process, 10, group=True)
        self.processes = {}

    def logTail(self) -> str:
        """The ends of the servers' logs."""
        tails = []
        for name in self.processes:
            try:
                tails.append(
                    f"--- {name}\n" + (self.directory / f"{name}.log").read_text(errors="replace")[-1500:]
                )
            except OSError:
                pass
        return "\n".join(tails)


def _startedSwift(directory: Path) -> SwiftAllInOne:
    swift = SwiftAllInOne(directory)
    swift.start()
    return swift


def sharedSwift() -> SwiftAllInOne:
    """One Swift for the whole test run (each test uses its own container), stopped at exit."""
    return sharedServer(
        "swift",
        _startedSwift,
        lambda s: bool(s.processes) and all(p.poll() is None for p in s.processes.values()),
    )
