"""C{/v2/_catalog}: the registry's repositories, paginated with C{n}, C{last} and C{Link}."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.web.iweb import IRequest

from registryd.api import access as needs
from registryd.api.answers import jsonAnswer
from registryd.api.base import endpoint, linkNext, pageSize, queryArg
from registryd.registry.errors import PaginationNumberInvalid

if TYPE_CHECKING:
    from registryd.api.app import RegistryAPI

DEFAULT_ENTRIES = 100
"""How many repositories a request without C{n} gets (distribution's default)."""

MAX_ENTRIES = 1000
"""distribution's catalog.maxentries default: a larger C{n} is refused with PAGINATION_NUMBER_INVALID."""


@endpoint(needs.catalog)
async def listRepositories(api: RegistryAPI, request: IRequest) -> bytes | None:
    """C{GET}: C{{"repositories": [...]}} in lexical order by path component."""
    n = pageSize(request)
    if n is None:
        n = DEFAULT_ENTRIES
    elif n > MAX_ENTRIES:
        raise PaginationNumberInvalid({"n": n, "max": MAX_ENTRIES})
    last = queryArg(request, "last") or None
    if n == 0:
        return jsonAnswer(request, {"repositories": []})
    names, more = await api.registry.catalog(n, last)
    names = list(names)
    if more and names:
        request.setHeader(b"Link", linkNext(api, "/v2/_catalog", names[-1], n))
    return jsonAnswer(request, {"repositories": names})
