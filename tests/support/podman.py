"""
Driving podman against a registry on loopback: its storage (vfs) lives under a directory of the test's,
so nothing touches the machine's container storage.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.processes import RegistryProcess
from tests.support.tools import requireTool


class PodmanFailed(AssertionError):
    """podman exited non-zero; the message carries its output and the registry's log."""


class Podman:
    """The podman program with its own image store under C{directory}; call L{cleanup} when done."""

    def __init__(self, directory: Path, registry: RegistryProcess, timeout: float = 300.0) -> None:
        self.binary = requireTool("podman")
        self.directory = Path(directory)
        self.registry = registry
        self.timeout = timeout
        (self.directory / "root").mkdir(parents=True, exist_ok=True)
        # podman refuses a runroot longer than 50 characters, so run and tmp go under a short /tmp path.
        # Its name is also valid in an image reference (lower case, digits, dashes).
        self.shortDirectory = Path(tempfile.gettempdir()) / f"podman-{os.getpid()}-{secrets.token_hex(4)}"
        self.shortDirectory.mkdir(mode=0o700)
        for name in ("run", "tmp"):
            (self.shortDirectory / name).mkdir()

    def cleanup(self) -> None:
        """Remove the short-path run and tmp directories (the store stays with the test's files)."""
        shutil.rmtree(self.shortDirectory, ignore_errors=True)

    def run(self, *arguments: str) -> subprocess.CompletedProcess:
        """Run podman with C{arguments} on this store; raise L{PodmanFailed} on a non-zero exit."""
        command = [
            self.binary,
            "--root",
            str(self.directory / "root"),
            "--runroot",
            str(self.shortDirectory / "run"),
            "--tmpdir",
            str(self.shortDirectory / "tmp"),
            "--storage-driver",
            "vfs",
            "--events-backend",
            "none",
            "--cgroup-manager",
            "cgroupfs",
            *arguments,
        ]
        result = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=self.timeout
        )
        if result.returncode != 0:
            raise PodmanFailed(
                f"{' '.join(command)} exited with {result.returncode}\n"
                f"--- stderr ---\n{result.stderr[-6000:]}\n"
                f"--- {self.registry.name} log ---\n{self.registry.logTail()}"
            )
        return result

    def reference(self, repository: str, tag: str) -> str:
        """C{host:port/repository:tag} in the registry."""
        return f"{self.registry.host}/{repository}:{tag}"

    def pullLayout(self, layout: Path, tag: str) -> str:
        """Bring the image tagged C{tag} in an OCI layout into the store, without network; its image id."""
        # podman names the image after the layout's path, which must then be a valid repository name.
        link = self.shortDirectory / "layout"
        link.symlink_to(Path(layout).resolve())
        try:
            return self.run("pull", "-q", f"oci:{link}:{tag}").stdout.strip().splitlines()[-1]
        finally:
            link.unlink()

    def push(self, image: str, reference: str, format: str) -> None:
        """C{podman push --format FORMAT} (C{oci} or C{v2s2}) to the registry over plain HTTP."""
        self.run("push", "--tls-verify=false", "--format", format, image, reference)

    def pull(self, reference: str) -> str:
        """C{podman pull} from the registry over plain HTTP; returns the image id."""
        return self.run("pull", "-q", "--tls-verify=false", reference).stdout.strip().splitlines()[-1]

    def inspect(self, image: str) -> dict:
        """C{podman image inspect} of one image, decoded."""
        return json.loads(self.run("image", "inspect", image).stdout)[0]
