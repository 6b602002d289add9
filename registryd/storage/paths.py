"""The grammar of storage paths, shared by every driver so none can be led outside its root."""

from __future__ import annotations

import re

from registryd.storage.interfaces import InvalidPath

_PATH = re.compile(r"^(/[A-Za-z0-9._-]+)+$")


def checkPath(driverName: str, path: str) -> str:
    """
    Return path if it is a valid absolute storage path ("/" included), else raise InvalidPath.

    A component may not be '.' or '..', so a path never escapes a driver's root.
    """
    if path == "/":
        return path
    if not isinstance(path, str) or not _PATH.match(path):
        raise InvalidPath(driverName, path if isinstance(path, str) else repr(path))
    if any(part in (".", "..") for part in path.split("/")):
        raise InvalidPath(driverName, path)
    return path


def parentOf(path: str) -> str:
    """The directory holding path ("/" for a top-level path)."""
    parent = path.rsplit("/", 1)[0]
    return parent or "/"


def join(directory: str, name: str) -> str:
    """Join a directory path and one child name."""
    return (directory.rstrip("/") or "") + "/" + name
