"""
The spec's grammars for repository names, tags and digests, and hashers by algorithm.

Every name, tag and digest that reaches storage passes through here first, so nothing a
client sends can become a path outside the registry's layout.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from registryd.registry.errors import DigestInvalid, NameInvalid, TagInvalid

NAME_MAX_LENGTH = 255
"""distribution's limit on a whole repository name."""

# Path components of lowercase alphanumerics joined by separators ('.', '_', '__', or runs
# of '-'), the components joined by '/'.
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_PATTERN = rf"{_COMPONENT}(?:/{_COMPONENT})*"
"""The spec's repository name grammar, as a regular expression (the routes match names with it)."""

_NAME = re.compile(rf"{NAME_PATTERN}\Z")
_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}\Z")
_DIGEST = re.compile(r"([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)\Z")

DIGEST_LENGTHS = {"sha256": 64, "sha512": 128}
"""The supported digest algorithms and the length of their hex encoding."""

_HEX = re.compile(r"[0-9a-f]+\Z")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


def checkName(name: str) -> str:
    """Return name if it is a valid repository name, else raise L{NameInvalid}."""
    if not isinstance(name, str) or not name:
        raise NameInvalid(detail={"name": name, "reason": "empty"})
    if len(name) > NAME_MAX_LENGTH:
        raise NameInvalid(detail={"name": name, "reason": f"longer than {NAME_MAX_LENGTH} characters"})
    if not _NAME.match(name):
        raise NameInvalid(detail={"name": name, "reason": "does not match the repository name grammar"})
    return name


def checkTag(tag: str) -> str:
    """Return tag if it is a valid tag, else raise L{TagInvalid}."""
    if not isinstance(tag, str) or not _TAG.match(tag):
        raise TagInvalid(detail={"tag": tag, "reason": "does not match the tag grammar"})
    return tag


def isDigest(reference: str) -> bool:
    """True when a manifest reference names a digest rather than a tag (tags cannot hold ':')."""
    return ":" in reference


def parseDigest(text: str) -> tuple[str, str]:
    """
    Split a digest into (algorithm, hex), checking the grammar and that the algorithm is
    supported with an encoding of the right length. Raises L{DigestInvalid}.
    """
    match = _DIGEST.match(text) if isinstance(text, str) else None
    if match is None:
        raise DigestInvalid(
            detail={"digest": text, "reason": "invalid digest format"}, message="invalid digest"
        )
    algorithm, encoded = match.groups()
    length = DIGEST_LENGTHS.get(algorithm)
    if length is None:
        raise DigestInvalid(
            detail={"digest": text, "reason": f"unsupported digest algorithm {algorithm!r}"},
            message="unsupported digest algorithm",
        )
    if len(encoded) != length or not _HEX.match(encoded):
        raise DigestInvalid(
            detail={"digest": text, "reason": f"{algorithm} needs {length} lowercase hex characters"},
            message="invalid digest",
        )
    return algorithm, encoded


def checkDigest(text: str) -> str:
    """Return the digest text if it is valid and supported, else raise L{DigestInvalid}."""
    parseDigest(text)
    return text


def newHasher(algorithm: str) -> Any:
    """A fresh hashlib object for a supported digest algorithm (ValueError otherwise)."""
    if algorithm not in DIGEST_LENGTHS:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")
    return hashlib.new(algorithm)


def digestOf(content: bytes, algorithm: str = "sha256") -> str:
    """The '<alg>:<hex>' digest of small content held in memory (manifests)."""
    return f"{algorithm}:{hashlib.new(algorithm, content).hexdigest()}"


def isUploadID(text: str) -> bool:
    """True when text is an upload id this registry (or distribution) hands out: a lowercase UUID."""
    return isinstance(text, str) and _UUID.match(text) is not None
