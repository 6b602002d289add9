"""
What each route needs of the access controller: distribution's resource scopes, per
route and method (its C{appendAccessRecords}), so that a token server or an access rule
sees exactly what a client asks for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from twisted.web.iweb import IRequest

from registryd.auth.interfaces import Access
from registryd.registry.errors import NameInvalid
from registryd.registry.names import checkName

NeededAccess = Callable[[IRequest, Mapping[str, Any]], list[Access]]


def nothing(request: IRequest, values: Mapping[str, Any]) -> list[Access]:
    """C{GET /v2/}: no resource, though the client must still authenticate."""
    return []


def pull(request: IRequest, values: Mapping[str, Any]) -> list[Access]:
    """Reading a repository: manifests, blobs, tags, referrers."""
    return [Access("repository", values["name"], "pull")]


def push(request: IRequest, values: Mapping[str, Any]) -> list[Access]:
    """Writing a repository: uploads and manifest pushes need pull and push, as in distribution."""
    name = values["name"]
    return [Access("repository", name, "pull"), Access("repository", name, "push")]


def delete(request: IRequest, values: Mapping[str, Any]) -> list[Access]:
    """Deleting a manifest, tag or blob."""
    return [Access("repository", values["name"], "delete")]


def catalog(request: IRequest, values: Mapping[str, Any]) -> list[Access]:
    """Listing every repository."""
    return [Access("registry", "catalog", "*")]


def pushOrMount(request: IRequest, values: Mapping[str, Any]) -> list[Access]:
    """Starting an upload; a cross-repository mount also needs pull on the source repository."""
    needed = push(request, values)
    if request.args.get(b"mount"):
        source = request.args.get(b"from", [b""])[0].decode("utf-8", "replace")
        try:
            checkName(source)
        except NameInvalid:
            # Not a repository name: no mount will happen (the upload falls back to a new session).
            return needed
        if source != values["name"]:
            needed.append(Access("repository", source, "pull"))
    return needed
