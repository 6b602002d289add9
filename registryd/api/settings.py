"""
What the HTTP API layer needs to know of the daemon's configuration (the C{http}
section and C{storage.redirect}), gathered in one value the service hands over.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from registryd.auth.interfaces import IAccessController
from registryd.notifications.bridge import EventBridge, NoEvents


def _noProblem() -> str | None:
    return None


@dataclass
class APISettings:
    """
    Settings of the API.

    @ivar prefix: C{http.prefix}: the path the service mounts the API under ("" or "/registry").
    @ivar host: C{http.host}: the external URL of the registry, used for absolute Location URLs.
    @ivar relativeURLs: C{http.relativeurls}: answer Location headers with paths only.
    @ivar headers: C{http.headers}: extra headers added to every response.
    @ivar secret: C{http.secret}: the key that signs upload state (random by default, so an
        upload URL is then only good on this process).
    @ivar redirectDisabled: C{storage.redirect.disable}: never redirect blob downloads.
    @ivar health: returns the reason of a failing health check, or None when healthy;
        while it fails, API requests get 503 UNAVAILABLE.
    @ivar accessController: the L{IAccessController} of C{auth}, or None for an open registry.
    @ivar events: where requests record their notification events: an L{EventBridge} when
        C{notifications} has endpoints, else L{NoEvents} (nothing is recorded).
    """

    prefix: str = ""
    host: str | None = None
    relativeURLs: bool = False
    headers: dict[str, list[str]] = field(default_factory=dict)
    secret: bytes = field(default_factory=lambda: os.urandom(32))
    redirectDisabled: bool = False
    health: Callable[[], str | None] = _noProblem
    accessController: IAccessController | None = None
    events: EventBridge | NoEvents = field(default_factory=NoEvents)

    def __post_init__(self) -> None:
        # "/registry/" and "registry" both mean "/registry": URLs are built by appending "/v2/...".
        prefix = self.prefix.strip("/")
        self.prefix = f"/{prefix}" if prefix else ""
        if isinstance(self.secret, str):
            self.secret = self.secret.encode("utf-8")
