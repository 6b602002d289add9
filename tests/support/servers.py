"""
Server subprocesses for tests: started in a session of their own with output to a log file,
waited for until they answer, and stopped with SIGTERM then SIGKILL.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def spawn(
    command: list[str], logPath: Path, cwd: Path | str | None = None, env: dict | None = None
) -> subprocess.Popen:
    """Start C{command} in a new session, stdin closed, stdout and stderr appended to C{logPath}."""
    with open(logPath, "ab") as log:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def listening(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:C{port}."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def waitUntilReady(
    process: subprocess.Popen,
    ready: Callable[[], bool],
    timeout: float,
    pause: float,
    exited: Callable[[int], Exception],
    tooSlow: Callable[[], Exception],
    stop: Callable[[], object],
) -> None:
    """Poll C{ready} until it holds; raise C{exited(status)} if the process ends, else C{tooSlow()}."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise exited(process.returncode)
        if ready():
            return
        time.sleep(pause)
    stop()
    raise tooSlow()


def stopProcess(process: subprocess.Popen, timeout: float, group: bool = False) -> int:
    """SIGTERM the process (its whole process group with C{group}), SIGKILL after C{timeout}; its status."""
    if process.poll() is None:
        if group:
            os.killpg(process.pid, signal.SIGTERM)
        else:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            if group:
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
            process.wait()
    return process.returncode


def logTail(path: Path, lines: int) -> str:
    """The last C{lines} lines of a log file, for failure messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


_sharedServers: dict[str, Any] = {}


def sharedServer(name: str, make: Callable[[Path], Any], alive: Callable[[Any], bool]) -> Any:
    """
    One server of a kind for the whole test run, made by C{make(directory)} (which starts it)
    in a fresh temporary directory, made again when C{alive(server)} says it died, and stopped
    (its directory removed) when the run exits.
    """
    server = _sharedServers.get(name)
    if server is not None and alive(server):
        return server
    if server is not None:
        server.stop()
    directory = Path(tempfile.mkdtemp(prefix=f"registryd-{name}-"))
    try:
        server = make(directory)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise

    def cleanup() -> None:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)

    atexit.register(cleanup)
    _sharedServers[name] = server
    return server


def systemPythonEnvironment() -> dict[str, str]:
    """
    The environment for a distribution's own tools that run on its Python (Swift's, Ceph's):
    without our PYTHON* variables (trial -j sets PYTHONPATH to this interpreter's paths).
    """
    return {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
