"""
Azurite, Microsoft's Blob service emulator, started on loopback for the azure driver's tests.

C{.ci/run} installs it with npm into L{AZURITE_PREFIX} (outside the source tree); an
C{azurite-blob} on the PATH is used too.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from subprocess import Popen

from twisted.trial.unittest import SkipTest

from tests.support.certificates import Authority
from tests.support.processes import freePort
from tests.support.servers import listening, logTail, sharedServer, spawn, stopProcess, waitUntilReady
from tests.support.tools import ToolMissing, inCI

#: Where .ci/run installs the azurite npm package.
AZURITE_PREFIX = Path(os.environ.get("REGISTRYD_NODE_PREFIX", Path.home() / ".cache" / "registryd" / "node"))

#: Azurite's well-known development account and key (published in Azure's documentation).
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def findAzurite() -> str:
    """The azurite-blob program; skip when it is missing (fail under CI)."""
    candidate = AZURITE_PREFIX / "node_modules" / ".bin" / "azurite-blob"
    if os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which("azurite-blob")
    if found:
        return found
    hint = f"azurite-blob is not installed (npm install --prefix {AZURITE_PREFIX} azurite)"
    if inCI():
        raise ToolMissing(hint + "; CI=true, so this is a failure, not a skip")
    raise SkipTest(hint)


class Azurite:
    """
    One azurite-blob process on 127.0.0.1, its data in a directory of its own. With C{oauth},
    it takes bearer tokens too (C{--oauth basic}: issuer, audience and lifetime are checked,
    not the signature) and so speaks HTTPS, with a certificate from L{authority}.
    """

    def __init__(self, directory: Path, oauth: bool = False) -> None:
        self.directory = directory
        self.port = freePort()
        self.process: Popen | None = None
        self.oauth = oauth
        self.authority = Authority("registryd test Azurite CA") if oauth else None

    @property
    def serviceURL(self) -> str:
        """The Blob service endpoint of the development account."""
        scheme = "https" if self.oauth else "http"
        return f"{scheme}://127.0.0.1:{self.port}/{ACCOUNT_NAME}"

    def start(self, timeout: float = 30.0) -> None:
        """Start Azurite and wait until it accepts connections."""
        program = findAzurite()
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            program,
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(self.port),
            "--location",
            str(self.directory),
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
            "--silent",
        ]
        if self.authority is not None:
            issued = self.authority.issue("127.0.0.1", server=True, addresses=("127.0.0.1",))
            certificate, key = issued.write(self.directory, "azurite")
            command += ["--oauth", "basic", "--cert", str(certificate), "--key", str(key)]
        self.process = spawn(command, self.directory / "azurite.log")
        waitUntilReady(
            self.process,
            lambda: listening(self.port),
            timeout,
            0.1,
            lambda status: RuntimeError(f"azurite exited with {status}: {self.logTail()}"),
            lambda: RuntimeError(f"azurite did not listen within {timeout}s: {self.logTail()}"),
            self.stop,
        )

    def stop(self) -> None:
        """Stop the process group Azurite runs in (node and its children)."""
        if self.process is None:
            return
        stopProcess(self.process, 10, group=True)
        self.process = None

    def logTail(self) -> str:
        """The end of Azurite's output."""
        return logTail(self.directory / "azurite.log", 40)


def _startedAzurite(directory: Path) -> Azurite:
    azurite = Azurite(directory)
    azurite.start()
    return azurite


def _startedOAuthAzurite(directory: Path) -> Azurite:
    azurite = Azurite(directory, oauth=True)
    azurite.start()
    return azurite


def _alive(azurite: Azurite) -> bool:
    return azurite.process is not None and azurite.process.poll() is None


def sharedAzurite() -> Azurite:
    """One Azurite for the whole test run (each test uses its own container), stopped at exit."""
    return sharedServer("azurite", _startedAzurite, _alive)


def sharedOAuthAzurite() -> Azurite:
    """One HTTPS Azurite taking bearer tokens for the whole run (trust its C{authority})."""
    return sharedServer("azurite-oauth", _startedOAuthAzurite, _alive)
