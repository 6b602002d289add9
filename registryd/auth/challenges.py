"""The C{WWW-Authenticate} challenges a registry answers with (RFC 7235 auth-params)."""

from __future__ import annotations

from collections.abc import Sequence

from registryd.auth.interfaces import Access, scopeText


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def basicChallenge(realm: str) -> str:
    """C{Basic realm="..."}."""
    return f"Basic realm={_quoted(realm)}"


def bearerChallenge(realm: str, service: str, accesses: Sequence[Access], error: str | None = None) -> str:
    """
    C{Bearer realm="...",service="...",scope="..."} naming exactly the scopes the request
    needs (distribution's format), with C{error="..."} (e.g. C{insufficient_scope}) when given.
    """
    params = [f"realm={_quoted(realm)}", f"service={_quoted(service)}"]
    scope = scopeText(accesses)
    if scope:
        params.append(f"scope={_quoted(scope)}")
    if error:
        params.append(f"error={_quoted(error)}")
    return "Bearer " + ",".join(params)
