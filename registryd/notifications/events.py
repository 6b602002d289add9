"""
The events of the registry's activity, as plain dicts in distribution's event format.

An event names who did what to which content: C{id} (a UUID), C{timestamp} (RFC 3339 with
nanoseconds, local zone, as Go writes a C{time.Time}), C{action} (C{push}, C{pull},
C{mount}, C{delete}), C{target} (the content), C{request} (the API request), C{actor}
(the authenticated user) and C{source} (this registry process). Keys appear in the order
distribution's JSON encoder writes them, and keys distribution omits when empty are left
out, so a receiver written for distribution reads them unchanged.

Which requests emit which events (distribution's listener, mirrored by the API handlers):

  - manifest C{GET} and C{HEAD}: C{pull} (with C{tag} when fetched by tag); not a 304;
  - manifest C{PUT}: C{push} (with C{tag} when pushed by tag; one more per C{?tag=});
  - manifest C{DELETE} by digest: C{delete} of the manifest, then one C{delete} per tag
    that pointed at it (target: repository and tag); by tag: the tag's C{delete};
  - blob C{GET} and C{HEAD} (also a 304, a Range or a redirect): C{pull};
  - upload completion (C{PUT}, or a monolithic C{POST ?digest=}): C{push};
  - a cross-repository mount (C{POST ?mount=&from=}): C{mount} with C{fromRepository};
  - blob C{DELETE}: C{delete}.

Blob targets carry the media type C{application/octet-stream}: distribution does not
know a blob's type either. C{length} repeats C{size} (deprecated, still sent). Delete
targets carry only the digest (or tag) and repository.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from registryd.auth.interfaces import identityOf
from registryd.web.request import requestIDOf

PUSH = "push"
PULL = "pull"
MOUNT = "mount"
DELETE = "delete"

# What distribution's blob store says of every blob: it keeps no media type for them.
BLOB_MEDIA_TYPE = "application/octet-stream"

# The fields of an OCI descriptor in the order Go's encoder writes them (image-spec's
# v1.Descriptor), and of a platform; references are written this way.
_DESCRIPTOR_FIELDS = (
    "mediaType",
    "digest",
    "size",
    "urls",
    "annotations",
    "data",
    "platform",
    "artifactType",
)
_ALWAYS = ("mediaType", "digest", "size")
_PLATFORM_FIELDS = ("architecture", "os", "os.version", "os.features", "variant")


def rfc3339Nano(nanoseconds: int, zone: tzinfo | None = None) -> str:
    """
    A moment as Go's C{time.Time} writes itself in JSON (C{RFC3339Nano}): local time (or
    C{zone}), a fraction of up to nine digits without trailing zeros, C{Z} for UTC.
    """
    seconds, fraction = divmod(nanoseconds, 1_000_000_000)
    # astimezone(None) is the local zone, as Go's time.Now().
    moment = datetime.fromtimestamp(seconds, UTC).astimezone(zone)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    offset = moment.utcoffset() or timedelta(0)
    if not offset:
        return text + "Z"
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def sourceRecord(httpAddr: str, hostname: str | None = None, instanceID: str | None = None) -> dict[str, str]:
    """
    The C{source} of this process's events, as distribution fills it: the host name with
    the port of C{http.addr} (the host name alone when the address has no port, e.g. a
    unix socket), and an instance id that changes with every start.
    """
    name = socket.gethostname() if hostname is None else hostname
    port = _portOf(httpAddr)
    if not name:
        addr = httpAddr
    elif port is None:
        addr = name
    else:
        addr = f"[{name}]:{port}" if ":" in name else f"{name}:{port}"
    return {"addr": addr, "instanceID": instanceID or str(uuid.uuid4())}


def _portOf(addr: str) -> str | None:
    """The port of a C{host:port} address as Go's C{net.SplitHostPort} finds it, or None."""
    if addr.startswith("["):
        close = addr.find("]")
        return addr[close + 2 :] if close >= 0 and addr[close + 1 : close + 2] == ":" else None
    host, sep, port = addr.rpartition(":")
    if not sep or ":" in host or "[" in addr or "]" in addr:
        return None
    return port


def _header(request: Any, name: bytes) -> str:
    value = request.getHeader(name)
    if value is None:
        return ""
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _isIP(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def clientAddress(request: Any) -> str:
    """
    The client as distribution names it: the first C{X-Forwarded-For} entry or
    C{X-Real-Ip} when it is an IP address, else the peer's C{ip:port} (C{[ip]:port} for IPv6).
    """
    forwarded = _header(request, b"X-Forwarded-For")
    if forwarded:
        first = forwarded.split(",", 1)[0].strip()
        if _isIP(first):
            return first
    real = _header(request, b"X-Real-Ip").strip()
    if real and _isIP(real):
        return real
    address = request.getClientAddress()
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if host is None or port is None:
        return ""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def requestRecord(request: Any) -> dict[str, str]:
    """The C{request} of an event: the API request's id, client, Host, method and User-Agent."""
    record = {"id": requestIDOf(request)}
    addr = clientAddress(request)
    if addr:
        record["addr"] = addr
    host = _header(request, b"Host")
    if host:
        record["host"] = host
    record["method"] = request.method.decode("latin-1")
    record["useragent"] = _header(request, b"User-Agent")
    return record


def actorRecord(request: Any) -> dict[str, str]:
    """The C{actor} of an event: the authenticated user's name, or nothing (C{{}}) when anonymous."""
    name = identityOf(request).name
    return {"name": name} if name else {}


def _descriptor(value: Mapping[str, Any]) -> dict[str, Any]:
    """A descriptor of a manifest as Go re-encodes it: known fields only, in the struct's order."""
    out: dict[str, Any] = {}
    for key in _DESCRIPTOR_FIELDS:
        if key in value and (key in _ALWAYS or value[key] not in (None, "", [], {})):
            if key == "platform" and isinstance(value[key], Mapping):
                out[key] = {k: value[key][k] for k in _PLATFORM_FIELDS if value[key].get(k)}
            else:
                out[key] = value[key]
        elif key in _ALWAYS:
            out[key] = 0 if key == "size" else ""
    return out


def manifestReferences(content: bytes) -> list[dict[str, Any]]:
    """
    What a manifest refers to, as distribution lists it for C{events.includereferences}:
    an image manifest's config then its layers; an index's (or manifest list's) manifests.
    """
    try:
        document = json.loads(content)
    except ValueError:
        return []
    if not isinstance(document, dict):
        return []
    found: list[Any] = []
    if isinstance(document.get("manifests"), list):
        found = document["manifests"]
    else:
        if isinstance(document.get("config"), dict):
            found.append(document["config"])
        if isinstance(document.get("layers"), list):
            found.extend(document["layers"])
    return [_descriptor(d) for d in found if isinstance(d, dict)]


@dataclass
class EventBuilder:
    """
    Makes the events of this process: knows its C{source}, whether manifest events list
    their references, and (for tests) where time and ids come from.

    @ivar source: the C{source} record (L{sourceRecord}).
    @ivar includeReferences: C{notifications.events.includereferences}.
    """

    source: dict[str, str] = field(default_factory=lambda: sourceRecord(":5000"))
    includeReferences: bool = False
    now: Callable[[], int] = time.time_ns
    newID: Callable[[], str] = lambda: str(uuid.uuid4())
    zone: tzinfo | None = None

    def event(
        self, action: str, target: dict[str, Any], request: dict[str, str], actor: dict[str, str]
    ) -> dict[str, Any]:
        """One event, stamped now with a fresh id."""
        return {
            "id": self.newID(),
            "timestamp": rfc3339Nano(self.now(), self.zone),
            "action": action,
            "target": target,
            "request": dict(request),
            "actor": dict(actor),
            "source": dict(self.source),
        }

    def manifestTarget(
        self,
        repository: str,
        mediaType: str,
        digest: str,
        size: int,
        url: str,
        content: bytes,
        tag: str | None = None,
    ) -> dict[str, Any]:
        """The target of a manifest push or pull: descriptor, repository, URL by digest, tag, references."""
        target: dict[str, Any] = {"mediaType": mediaType, "digest": digest, "size": size, "length": size}
        target["repository"] = repository
        target["url"] = url
        if tag:
            target["tag"] = tag
        if self.includeReferences:
            references = manifestReferences(content)
            if references:
                target["references"] = references
        return target

    def blobTarget(
        self, repository: str, digest: str, size: int, url: str, fromRepository: str | None = None
    ) -> dict[str, Any]:
        """The target of a blob push, pull or mount."""
        target: dict[str, Any] = {"mediaType": BLOB_MEDIA_TYPE, "digest": digest, "size": size}
        target["length"] = size
        target["repository"] = repository
        if fromRepository:
            target["fromRepository"] = fromRepository
        target["url"] = url
        return target

    @staticmethod
    def deleteTarget(repository: str, digest: str | None = None, tag: str | None = None) -> dict[str, Any]:
        """The target of a delete: only what was deleted (a digest or a tag) and the repository."""
        target: dict[str, Any] = {}
        if digest:
            target["digest"] = digest
        target["repository"] = repository
        if tag:
            target["tag"] = tag
        return target


__all__ = [
    "BLOB_MEDIA_TYPE",
    "DELETE",
    "MOUNT",
    "PULL",
    "PUSH",
    "EventBuilder",
    "actorRecord",
    "clientAddress",
    "manifestReferences",
    "requestRecord",
    "rfc3339Nano",
    "sourceRecord",
]
