"""
Driving skopeo against a registry on loopback over plain HTTP, and comparing OCI layouts afterwards.
"""

from __future__ import annotations

import filecmp
import json
import subprocess
from pathlib import Path

from tests.support.layouts import reachableBlobs, taggedDescriptor
from tests.support.processes import RegistryProcess
from tests.support.tools import requireTool


class SkopeoFailed(AssertionError):
    """skopeo exited non-zero; the message carries its output and the registry's log."""


class Skopeo:
    """The skopeo program, talking to one registry process at a time."""

    def __init__(self, registry: RegistryProcess, timeout: float = 300.0) -> None:
        self.binary = requireTool("skopeo")
        self.registry = registry
        self.timeout = timeout

    def reference(self, repository: str, tagOrDigest: str | None = None) -> str:
        """A docker:// reference to C{repository} in the registry, with C{:tag} or C{@digest} when given."""
        reference = f"docker://{self.registry.host}/{repository}"
        if tagOrDigest is None:
            return reference
        separator = "@" if ":" in tagOrDigest else ":"
        return reference + separator + tagOrDigest

    def run(self, *arguments: str, debug: bool = False) -> subprocess.CompletedProcess:
        """Run skopeo with C{arguments}; raise L{SkopeoFailed} on a non-zero exit."""
        command = [self.binary, "--insecure-policy"]
        if debug:
            command.append("--debug")
        command.extend(arguments)
        result = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=self.timeout
        )
        if result.returncode != 0:
            raise SkopeoFailed(
                f"{' '.join(command)} exited with {result.returncode}\n"
                f"--- stderr ---\n{result.stderr[-6000:]}\n"
                f"--- {self.registry.name} log ---\n{self.registry.logTail()}"
            )
        return result

    def copy(self, source: str, destination: str, all: bool = False, debug: bool = False) -> str:
        """C{skopeo copy source destination} over plain HTTP; returns skopeo's stderr (its debug log)."""
        arguments = ["copy", "--src-tls-verify=false", "--dest-tls-verify=false"]
        if all:
            arguments.append("--all")
        arguments.extend([source, destination])
        return self.run(*arguments, debug=debug).stderr

    def inspect(self, reference: str, raw: bool = False) -> dict:
        """C{skopeo inspect} (or C{--raw}, the manifest as stored) decoded from JSON."""
        arguments = ["inspect", "--tls-verify=false"]
        if raw:
            arguments.append("--raw")
        return json.loads(self.run(*arguments, reference).stdout)

    def inspectRaw(self, reference: str) -> bytes:
        """The manifest bytes C{skopeo inspect --raw} prints, exactly."""
        result = self.run("inspect", "--tls-verify=false", "--raw", reference)
        return result.stdout.encode("utf-8")

    def listTags(self, repository: str) -> list[str]:
        """C{skopeo list-tags}: the repository's tags."""
        result = self.run("list-tags", "--tls-verify=false", self.reference(repository))
        return json.loads(result.stdout)["Tags"]

    def delete(self, reference: str) -> None:
        """C{skopeo delete}: delete the manifest a reference names."""
        self.run("delete", "--tls-verify=false", reference)


def compareLayouts(source: Path, sourceTag: str, copy: Path, copyTag: str) -> list[str]:
    """
    Differences between an image in two OCI layouts: the tagged manifest's digest and every blob it
    reaches, byte for byte. An empty list means the copy is identical.
    """
    problems: list[str] = []
    original = taggedDescriptor(source, sourceTag)
    copied = taggedDescriptor(copy, copyTag)
    if original["digest"] != copied["digest"]:
        problems.append(f"top-level digest {copied['digest']} != original {original['digest']}")
        return problems
    if original.get("mediaType") != copied.get("mediaType"):
        problems.append(f"media type {copied.get('mediaType')} != original {original.get('mediaType')}")
    expected = reachableBlobs(source, original["digest"])
    found = reachableBlobs(copy, copied["digest"])
    if expected != found:
        problems.append(
            f"blob sets differ: missing {sorted(expected - found)}, extra {sorted(found - expected)}"
        )
    for digest in sorted(expected & found):
        algorithm, hexadecimal = digest.split(":", 1)
        left = Path(source) / "blobs" / algorithm / hexadecimal
        right = Path(copy) / "blobs" / algorithm / hexadecimal
        if not right.exists():
            problems.append(f"blob {digest} missing from the copy")
        elif not filecmp.cmp(left, right, shallow=False):
            problems.append(f"blob {digest} differs")
    return problems
