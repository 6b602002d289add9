"""C{/v2/<name>/tags/list}: a repository's tags, paginated with C{n}, C{last} and C{Link}."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.web.iweb import IRequest

from registryd.api import access as needs
from registryd.api.answers import jsonAnswer
from registryd.api.base import endpoint, linkNext, pageSize, queryArg

if TYPE_CHECKING:
    from registryd.api.app import RegistryAPI

MAX_TAGS = 1000
"""distribution's tags.maxtags default: a larger C{n} gets this many and a Link to the rest."""


@endpoint(needs.pull)
async def listTags(api: RegistryAPI, request: IRequest, name: str) -> bytes | None:
    """C{GET}: C{{"name": ..., "tags": [...]}} in lexical order."""
    n = pageSize(request)
    last = queryArg(request, "last") or None
    repository = api.registry.repository(name)
    if n is not None:
        n = min(n, MAX_TAGS)
    tags, more = await repository.tags(n, last)
    tags = list(tags)
    if more and tags:
        request.setHeader(b"Link", linkNext(api, f"/v2/{name}/tags/list", tags[-1], n or len(tags)))
    return jsonAnswer(request, {"name": name, "tags": tags})
