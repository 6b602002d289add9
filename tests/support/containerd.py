"""
A containerd daemon of the test's own (root, state and socket under a temporary directory) and its
C{ctr} client, for pushing to and pulling from a registry on loopback over plain HTTP.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from tests.support.processes import RegistryProcess
from tests.support.servers import logTail, spawn, stopProcess, waitUntilReady
from tests.support.tools import requireTool


class ContainerdFailed(AssertionError):
    """containerd did not start, or ctr exited non-zero; the message carries the logs."""


def layoutArchive(layout: Path, archive: Path) -> Path:
    """Write an OCI layout directory as the tar archive C{ctr images import} takes."""
    layout = Path(layout)
    with tarfile.open(archive, "w") as tar:
        for name in ("oci-layout", "index.json", "blobs"):
            tar.add(layout / name, arcname=name)
    return archive


class Containerd:
    """
    One containerd process with its own configuration: the CRI plugin off, everything it writes under
    C{directory} except its sockets, which go under a short /tmp path (unix socket paths are limited).
    """

    def __init__(self, directory: Path, registry: RegistryProcess, timeout: float = 300.0) -> None:
        self.daemon = requireTool("containerd")
        self.ctrBinary = requireTool("ctr", "containerd")
        self.directory = Path(directory)
        self.registry = registry
        self.timeout = timeout
        self.directory.mkdir(parents=True, exist_ok=True)
        self.socketDirectory = Path(tempfile.gettempdir()) / f"ctrd-{os.getpid()}-{secrets.token_hex(4)}"
        self.socketDirectory.mkdir(mode=0o700)
        self.socket = self.socketDirectory / "containerd.sock"
        self.logPath = self.directory / "containerd.log"
        self.process: subprocess.Popen | None = None

    def _writeConfig(self) -> Path:
        config = "\n".join(
            [
                "version = 2",
                f'root = "{self.directory / "root"}"',
                f'state = "{self.socketDirectory / "state"}"',
                'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
                "[grpc]",
                f'  address = "{self.socket}"',
                "[ttrpc]",
                f'  address = "{self.socket}.ttrpc"',
                "",
            ]
        )
        path = self.directory / "config.toml"
        path.write_text(config)
        return path

    def start(self, timeout: float = 30.0) -> None:
        """Start containerd and wait until C{ctr version} reaches it."""
        config = self._writeConfig()
        self.process = spawn([self.daemon, "--config", str(config)], self.logPath)

        def answers() -> bool:
            if not self.socket.exists():
                return False
            probe = subprocess.run(
                [self.ctrBinary, "-a", str(self.socket), "version"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=10,
            )
            return probe.returncode == 0

        def exited(status: int) -> Exception:
            return ContainerdFailed(f"containerd exited with {status}:\n{self.logTail()}")

        def tooSlow() -> Exception:
            return ContainerdFailed(f"containerd did not answer within {timeout}s:\n{self.logTail()}")

        waitUntilReady(self.process, answers, timeout, 0.1, exited, tooSlow, self.stop)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop containerd (SIGTERM, SIGKILL after C{timeout}) and remove its socket directory."""
        if self.process is not None:
            stopProcess(self.process, timeout)
        self.process = None
        shutil.rmtree(self.socketDirectory, ignore_errors=True)

    def logTail(self, lines: int = 40) -> str:
        """The last lines containerd wrote."""
        return logTail(self.logPath, lines)

    def ctr(self, *arguments: str) -> subprocess.CompletedProcess:
        """Run C{ctr} against this containerd; raise L{ContainerdFailed} on a non-zero exit."""
        command = [self.ctrBinary, "-a", str(self.socket), *arguments]
        result = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=self.timeout
        )
        if result.returncode != 0:
            raise ContainerdFailed(
                f"{' '.join(command)} exited with {result.returncode}\n"
                f"--- stdout ---\n{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-3000:]}\n"
                f"--- {self.registry.name} log ---\n{self.registry.logTail()}\n"
                f"--- containerd log ---\n{self.logTail()}"
            )
        return result

    def reference(self, repository: str, tag: str) -> str:
        """C{host:port/repository:tag} in the registry."""
        return f"{self.registry.host}/{repository}:{tag}"

    def importArchive(self, archive: Path, baseName: str) -> None:
        """C{ctr images import} of an OCI archive, every tag named C{baseName:tag}, all platforms."""
        self.ctr("images", "import", "--no-unpack", "--all-platforms", "--base-name", baseName, str(archive))

    def push(self, reference: str) -> None:
        """C{ctr images push --plain-http} of a local image to the registry."""
        self.ctr("images", "push", "--plain-http", reference)

    def pull(self, reference: str, allPlatforms: bool = False) -> None:
        """C{ctr images pull --plain-http}, unpacked with the native snapshotter (checks layer contents)."""
        arguments = ["images", "pull", "--plain-http", "--snapshotter", "native"]
        if allPlatforms:
            arguments.append("--all-platforms")
        self.ctr(*arguments, reference)

    def images(self) -> dict[str, tuple[str, str]]:
        """C{ctr images ls}: each image name with its media type and digest."""
        listing = self.ctr("images", "ls").stdout.splitlines()[1:]
        found = {}
        for line in listing:
            fields = line.split()
            if len(fields) >= 3:
                found[fields[0]] = (fields[1], fields[2])
        return found

    def contentDigest(self, digest: str) -> str:
        """The sha256 digest of a blob as C{ctr content get} streams it out of containerd's store."""
        command = [self.ctrBinary, "-a", str(self.socket), "content", "get", digest]
        hasher = hashlib.sha256()
        with subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE) as reader:
            while chunk := reader.stdout.read(1 << 20):
                hasher.update(chunk)
        if reader.returncode != 0:
            raise ContainerdFailed(f"ctr content get {digest} exited with {reader.returncode}")
        return "sha256:" + hasher.hexdigest()

    def contentDigests(self) -> set[str]:
        """Every blob digest in containerd's content store."""
        listing = self.ctr("content", "ls", "-q").stdout
        return set(re.findall(r"sha256:[0-9a-f]{64}", listing))
