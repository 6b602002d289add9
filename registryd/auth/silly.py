"""
distribution's C{silly} access controller, for development: any request carrying an
Authorization header is let in; one without is challenged with a Bearer realm naming the
scope it needs. It checks nothing else and must not guard a real registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from registryd.auth.challenges import bearerChallenge
from registryd.auth.interfaces import Access, AuthenticationRequired, IAccessController, Identity
from registryd.config.auth import SillyConfig


@implementer(IAccessController)
class SillyAccessController:
    """Lets in whoever sends any Authorization header."""

    def __init__(self, realm: str, service: str) -> None:
        self.realm = realm
        self.service = service

    def authorize(self, request: Any, accesses: Sequence[Access]) -> Deferred:
        if request.getHeader(b"Authorization"):
            return succeed(Identity(None, "silly"))
        return fail(AuthenticationRequired(bearerChallenge(self.realm, self.service, accesses)))


def controllerFromConfig(config: SillyConfig, reactor: Any) -> SillyAccessController:
    """Build the controller of C{auth.silly}."""
    return SillyAccessController(config.realm, config.service)
