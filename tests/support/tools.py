"""
Finding the external programs end-to-end tests drive (skopeo, docker-registry, umoci).

A missing program skips the test on a developer's machine, but fails it when C{CI=true}:
CI must never pass by skipping the tests that matter most.
"""

from __future__ import annotations

import os
import shutil

from twisted.trial.unittest import SkipTest


def inCI() -> bool:
    """Whether we run under CI, where a missing tool is a failure rather than a skip."""
    return os.environ.get("CI", "").strip().lower() == "true"


class ToolMissing(Exception):
    """A program an end-to-end test needs is not installed (raised only under CI)."""


def requireTool(name: str, package: str | None = None) -> str:
    """Return the full path of program C{name}; skip the test when it is missing (fail under CI)."""
    path = shutil.which(name)
    if path is None:
        for candidate in (f"/usr/bin/{name}", f"/usr/sbin/{name}"):
            if os.access(candidate, os.X_OK):
                path = candidate
                break
    if path is not None:
        return path
    hint = f"{name} is not installed (apt-get install -y {package or name})"
    if inCI():
        raise ToolMissing(hint + "; CI=true, so this is a failure, not a skip")
    raise SkipTest(hint)


def requireModule(name: str, package: str) -> object:
    """Import and return module C{name}; skip the test when it is missing (fail under CI)."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        hint = f"Python module {name} is not installed (pip install {package})"
        if inCI():
            raise ToolMissing(hint + "; CI=true, so this is a failure, not a skip") from None
        raise SkipTest(hint) from None
