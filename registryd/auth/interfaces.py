"""
The seam between the HTTP API and the ways a request proves who sent it.

The API names the accesses a request needs (distribution's resource scopes:
C{repository:<name>:pull|push|delete}, C{registry:catalog:*}); an L{IAccessController}
decides, firing with the L{Identity} it established or failing with
L{AuthenticationRequired} (401, with the challenge the client must answer) or
L{AccessDenied} (403: known, but not allowed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from zope.interface import Interface

from registryd.registry.errors import Denied, Unauthorized


@dataclass(frozen=True, order=True)
class Access:
    """One resource scope a request needs, e.g. C{Access("repository", "team/app", "push")}."""

    type: str
    name: str
    action: str

    def scope(self) -> str:
        """The scope text of distribution's token spec: C{type:name:action}."""
        return f"{self.type}:{self.name}:{self.action}"


def scopeText(accesses: Sequence[Access]) -> str:
    """
    The scopes of accesses as a challenge names them: one C{type:name:actions} per resource,
    actions joined by commas, resources separated by spaces (distribution's format).
    """
    byResource: dict[tuple[str, str], list[str]] = {}
    for access in accesses:
        actions = byResource.setdefault((access.type, access.name), [])
        if access.action not in actions:
            actions.append(access.action)
    return " ".join(f"{kind}:{name}:{','.join(actions)}" for (kind, name), actions in byResource.items())


@dataclass(frozen=True)
class Identity:
    """
    Who sent a request, as established by an access controller.

    @ivar name: the user (htpasswd user, token subject), or None for an anonymous request.
    @ivar method: how it was established: C{"htpasswd"}, C{"token"}, C{"silly"}, C{"anonymous"}, C{"none"}.
    @ivar groups: groups the user belongs to (from the access rules), if any.
    """

    name: str | None
    method: str
    groups: frozenset[str] = field(default_factory=frozenset)


ANONYMOUS = Identity(None, "anonymous")
NO_AUTH = Identity(None, "none")


class AuthenticationRequired(Unauthorized):
    """
    401 UNAUTHORIZED with the challenge a client must answer (C{WWW-Authenticate}).

    @ivar challenge: the C{WWW-Authenticate} value, e.g. C{Basic realm="registry"}.
    """

    def __init__(self, challenge: str, detail: Any = None, message: str | None = None) -> None:
        super().__init__(detail, message)
        self.challenge = challenge
        self.headers = ((b"WWW-Authenticate", challenge.encode("latin-1")),)


class AccessDenied(Denied):
    """403 DENIED: the requester is known but may not do this."""


class IAccessController(Interface):
    """Decides whether a request may have the accesses it needs."""

    def authorize(request: object, accesses: Sequence[Access]) -> object:
        """
        @param request: the twisted.web request (headers, client address).
        @param accesses: what the request needs; empty for C{GET /v2/}, which still asks
            the client to authenticate when anonymous requests are not allowed.
        @return: Deferred firing with an L{Identity}, or failing with
            L{AuthenticationRequired} or L{AccessDenied}.
        """


REQUEST_IDENTITY = "registryIdentity"


def identityOf(request: object) -> Identity:
    """The identity an access controller established for the request (L{NO_AUTH} when none ran)."""
    return getattr(request, REQUEST_IDENTITY, NO_AUTH)
