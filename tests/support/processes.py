"""
Real registry processes for end-to-end tests: registryd under twistd, and Debian's distribution.

Both read the same distribution-style config.yml, so one root directory can be served by
either, one after the other (the layout cross-check relies on this).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from tests.support.servers import logTail, spawn, stopProcess, waitUntilReady

#: The repository root: holds C{registryd/} and C{twisted/plugins/registryd_plugin.py}.
REPO_ROOT = Path(__file__).resolve().parents[2]

#: Where Debian's distribution package installs its binary.
DISTRIBUTION_BINARY = "docker-registry"


class RegistryStartError(Exception):
    """A registry process exited or never answered C{GET /v2/}; the message carries its log."""


def freePort() -> int:
    """Return a TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def writeConfig(
    directory: Path, rootDirectory: Path, port: int, deleteEnabled: bool = True, extra: dict | None = None
) -> Path:
    """Write a distribution-compatible config.yml serving C{rootDirectory} on 127.0.0.1:C{port}."""
    config: dict = {
        "version": 0.1,
        "log": {"level": "info"},
        "storage": {
            "filesystem": {"rootdirectory": str(rootDirectory)},
            "delete": {"enabled": deleteEnabled},
        },
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    for key, value in (extra or {}).items():
        config[key] = value
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def registrydCommand(configPath: Path | None) -> list[str]:
    """The command line that runs registryd in the foreground from this Python (no config: defaults)."""
    # "python -m twisted" is the newer "twist" runner; twistd is this script's run().
    twistd = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
    command = [sys.executable, "-c", twistd, "-n", "--pidfile=", "registryd"]
    if configPath is not None:
        command += ["--config", str(configPath)]
    return command


def distributionCommand(configPath: Path, binary: str = DISTRIBUTION_BINARY) -> list[str]:
    """The command line that runs Debian's distribution registry."""
    return [binary, "serve", str(configPath)]


class RegistryProcess:
    """
    One registry server process on loopback, started and stopped synchronously.

    The process's output goes to C{logPath}; L{logTail} gives the end of it for failure messages.
    """

    def __init__(
        self,
        command: list[str],
        port: int,
        logPath: Path,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        name: str = "registry",
    ) -> None:
        self.command = command
        self.port = port
        self.logPath = logPath
        self.cwd = cwd
        self.env = env
        self.name = name
        self.process: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        """C{host:port} as clients name the registry."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The base URL of the registry."""
        return f"http://{self.host}"

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.process is not None, "not started"
        return self.process.pid

    def start(self, timeout: float = 30.0) -> None:
        """Start the process and wait until C{GET /v2/} answers; L{RegistryStartError} if it never does."""
        self.logPath.parent.mkdir(parents=True, exist_ok=True)
        self.process = spawn(self.command, self.logPath, cwd=self.cwd, env=self.env)
        waitUntilReady(
            self.process,
            self._answers,
            timeout,
            0.1,
            lambda status: RegistryStartError(
                f"{self.name} exited with {status} before answering:\n{self.logTail()}"
            ),
            lambda: RegistryStartError(
                f"{self.name} did not answer GET /v2/ within {timeout}s:\n{self.logTail()}"
            ),
            self.stop,
        )

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/v2/", timeout=2) as response:
                return response.status == 200
        except urllib.error.HTTPError as e:
            # An auth challenge still means the server is up.
            return e.code == 401
        except (OSError, ValueError):
            return False

    def stop(self, timeout: float = 20.0) -> int | None:
        """Stop the process with SIGTERM (SIGKILL after C{timeout}); return its exit status."""
        if self.process is None:
            return None
        status = stopProcess(self.process, timeout)
        self.process = None
        return status

    def running(self) -> bool:
        """Whether the process is alive."""
        return self.process is not None and self.process.poll() is None

    def logTail(self, lines: int = 60) -> str:
        """The last lines the process wrote, for failure messages."""
        return logTail(self.logPath, lines)


def registrydEnvironment() -> dict[str, str]:
    """The environment for a registryd process: this source tree first on the import path."""
    env = dict(os.environ)
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + existing if existing else "")
    # Settings from the caller's environment must not leak into the config under test.
    for key in list(env):
        if key.startswith("REGISTRY_"):
            del env[key]
    return env


def registrydProcess(workDirectory: Path, rootDirectory: Path, **configExtra: dict) -> RegistryProcess:
    """A registryd process (not started) serving C{rootDirectory}; config and log in C{workDirectory}."""
    port = freePort()
    config = writeConfig(workDirectory, rootDirectory, port, extra=configExtra or None)
    return registrydOn(workDirectory, config, port)


def registrydOn(
    workDirectory: Path, config: Path, port: int, processClass: type = RegistryProcess, **options: object
) -> RegistryProcess:
    """A registryd process (not started) running C{config} on C{port}, in and logging to C{workDirectory}."""
    return processClass(
        registrydCommand(config),
        port,
        workDirectory / "registryd.log",
        cwd=workDirectory,
        env=registrydEnvironment(),
        name="registryd",
        **options,
    )


def runRegistryd(workDirectory: Path, config: Path, timeout: float) -> subprocess.CompletedProcess:
    """Run registryd on C{config} until it exits (a start-up that must fail); its output as text."""
    return subprocess.run(
        registrydCommand(config),
        cwd=workDirectory,
        env=registrydEnvironment(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def distributionProcess(workDirectory: Path, rootDirectory: Path, binary: str) -> RegistryProcess:
    """A Debian distribution process (not yet started) serving C{rootDirectory}."""
    port = freePort()
    config = writeConfig(workDirectory, rootDirectory, port)
    env = {key: value for key, value in os.environ.items() if not key.startswith("REGISTRY_")}
    return RegistryProcess(
        distributionCommand(config, binary),
        port,
        workDirectory / "distribution.log",
        cwd=workDirectory,
        env=env,
        name="distribution",
    )
