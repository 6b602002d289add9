"""
What every route shares: the endpoint wrapper (health, read-only mode, errors as the
spec's JSON), URL building for Location and Link headers, query and header parsing,
and the base route C{GET /v2/}.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionClosed
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from registryd.api import access as needs
from registryd.api.access import NeededAccess
from registryd.api.answers import jsonAnswer
from registryd.api.download import ClientGone
from registryd.api.errors import writeError
from registryd.auth.interfaces import REQUEST_IDENTITY
from registryd.registry.errors import (
    PaginationNumberInvalid,
    RangeInvalid,
    RegistryError,
    Unavailable,
    Unsupported,
)

if TYPE_CHECKING:
    from registryd.api.app import RegistryAPI
    from registryd.notifications.bridge import RequestEvents, SilentEvents

log = Logger(namespace="registryd.api")

API_VERSION_HEADER = (b"Docker-Distribution-API-Version", [b"registry/2.0"])

Handler = Callable[..., Awaitable[bytes | None]]


def endpoint(access: NeededAccess, write: bool = False) -> Callable[[Handler], Callable[..., Deferred]]:
    """
    Make an C{async} handler C{(api, request, **routeValues)} a Klein route: refuse it
    while unhealthy (503), unless the access controller grants what C{access} says the
    request needs (401/403), or, for writes, in read-only mode (405); and answer every
    L{RegistryError} with its status and JSON body. Anything else is a bug: logged, 500.
    """

    def decorate(handler: Handler) -> Callable[..., Deferred]:
        @functools.wraps(handler)
        def route(api: RegistryAPI, request: IRequest, **values: Any) -> Deferred:
            return Deferred.fromCoroutine(_serve(api, request, handler, access, write, values))

        return route

    return decorate


async def _serve(
    api: RegistryAPI,
    request: IRequest,
    handler: Handler,
    access: NeededAccess,
    write: bool,
    values: dict[str, Any],
) -> bytes | None:
    gone: list[object] = []
    request.notifyFinish().addErrback(gone.append)
    try:
        reason = api.settings.health()
        if reason is not None:
            raise Unavailable({"reason": reason})
        namespace = queryArg(request, "ns")
        if namespace and "name" in values:
            values["name"] = api.registry.namespaced(values["name"], namespace)
        controller = api.settings.accessController
        if controller is not None:
            identity = await controller.authorize(request, access(request, values))
            setattr(request, REQUEST_IDENTITY, identity)
        if write and api.registry.readOnly:
            raise Unsupported("the registry is in read-only mode")
        return await handler(api, request, **values)
    except CancelledError:
        raise
    except ClientGone:
        return None
    except RegistryError as e:
        if request.startedWriting:
            _abandon(request, e)
            return None
        return writeError(request, e)
    except Exception as e:
        if gone or isinstance(e, ConnectionClosed):
            # The client went away mid-request (its body stream failed): nobody to answer.
            log.info(
                "{method} {uri}: client went away ({error})", method=request.method, uri=request.uri, error=e
            )
            return None
        log.failure(
            "unexpected error answering {method} {uri}",
            method=request.method.decode("latin-1"),
            uri=request.uri.decode("latin-1"),
        )
        if request.startedWriting:
            _abandon(request, e)
            return None
        return writeError(request, RegistryError({"error": type(e).__name__}))


def _abandon(request: IRequest, error: Exception) -> None:
    """A response already under way cannot change status: cut the connection so the client sees it short."""
    log.warn("aborting a response already started: {error}", error=error)
    request.loseConnection()


def queryArg(request: IRequest, name: str) -> str | None:
    """The first value of a query parameter as text, or None when absent."""
    values = request.args.get(name.encode("ascii"))
    if not values:
        return None
    return values[0].decode("utf-8", "replace")


def queryArgs(request: IRequest, name: str) -> list[str]:
    """Every value of a repeated query parameter."""
    return [v.decode("utf-8", "replace") for v in request.args.get(name.encode("ascii"), [])]


def header(request: IRequest, name: str) -> str | None:
    """A request header as text (bytes read as latin-1, so no client can make it fail), or None."""
    # By a str name twisted.web decodes the value as UTF-8, which raises for other bytes.
    value = request.getHeader(name.encode("ascii"))
    if value is None:
        return None
    return value.decode("latin-1") if isinstance(value, bytes) else value


def contentLength(request: IRequest) -> int | None:
    """The request's Content-Length, or None (absent, or the body is chunked)."""
    value = header(request, "Content-Length")
    if value is None or header(request, "Transfer-Encoding") is not None:
        return None
    value = value.strip()
    # isdigit alone accepts non-ASCII digits ('\xb2') that int() refuses.
    return int(value) if value.isascii() and value.isdigit() else None


_CONTENT_RANGE = re.compile(r"(?:bytes[ =])?([0-9]+)-([0-9]+)(?:/(?:[0-9]+|\*))?\Z")


def contentRange(request: IRequest) -> tuple[int, int] | None:
    """
    The (start, end inclusive) of a chunk's Content-Range (the spec's C{<start>-<end>}),
    or None without one. @raise RangeInvalid: when it cannot be parsed.
    """
    value = header(request, "Content-Range")
    if value is None:
        return None
    match = _CONTENT_RANGE.match(value.strip())
    if match is None:
        raise RangeInvalid({"contentRange": value})
    return int(match.group(1)), int(match.group(2))


def pageSize(request: IRequest) -> int | None:
    """The C{n} of a paginated list, None when not given. @raise PaginationNumberInvalid."""
    value = queryArg(request, "n")
    if value is None or value == "":
        return None
    if not value.isdigit() or not value.isascii():
        raise PaginationNumberInvalid({"n": value})
    return int(value)


def linkNext(api: RegistryAPI, path: str, last: str, n: int) -> bytes:
    """The C{Link} header pointing at the next page, as distribution writes it (a path)."""
    query = urlencode([("last", last), ("n", str(n))])
    return f'<{api.settings.prefix}{path}?{query}>; rel="next"'.encode()


def quotePath(path: str) -> str:
    """Quote a route path; names, digests and tags keep their characters."""
    return quote(path, safe="/:+=@")


def externalURL(api: RegistryAPI, request: IRequest, path: str, query: dict[str, str] | None = None) -> str:
    """
    A URL for a route path, as Location headers carry it: a path with relative URLs,
    else absolute from http.host or from the request (honouring proxies' X-Forwarded-*
    and Forwarded headers as distribution does); http.prefix included.
    """
    settings = api.settings
    target = quotePath(path)
    if query:
        target += "?" + urlencode(query)
    if settings.relativeURLs:
        return settings.prefix + target
    if settings.host:
        base = settings.host.rstrip("/")
        # A host given with the prefix as its path already says where the API lives.
        if settings.prefix and urlsplit(base).path.endswith(settings.prefix):
            return base + target
        return base + settings.prefix + target
    scheme, host = _requestOrigin(request)
    return f"{scheme}://{host}{settings.prefix}{target}"


def _requestOrigin(request: IRequest) -> tuple[str, str]:
    scheme = "https" if request.isSecure() else "http"
    host = header(request, "Host")
    if not host:
        address = request.getHost()
        host = f"{getattr(address, 'host', 'localhost')}:{getattr(address, 'port', 80)}"
    forwarded = header(request, "Forwarded")
    if forwarded:
        for pair in forwarded.split(",", 1)[0].split(";"):
            key, _, value = pair.strip().partition("=")
            value = value.strip().strip('"')
            if key.lower() == "proto" and value:
                scheme = value
            elif key.lower() == "host" and value:
                host = value
    forwardedProto = header(request, "X-Forwarded-Proto")
    if forwardedProto and forwardedProto.split(",", 1)[0].strip():
        scheme = forwardedProto.split(",", 1)[0].strip()
    forwardedHost = header(request, "X-Forwarded-Host")
    if forwardedHost and forwardedHost.split(",", 1)[0].strip():
        host = forwardedHost.split(",", 1)[0].strip()
    return scheme, host


def eventsFor(api: RegistryAPI, request: IRequest) -> RequestEvents | SilentEvents:
    """The request's recorder of notification events (silent when notifications are off)."""
    return api.settings.events.forRequest(request, lambda path: externalURL(api, request, path))


def contentDigestHeaders(request: IRequest, digest: str) -> None:
    """Name content by its digest: C{Docker-Content-Digest}, and the digest as its C{ETag}."""
    request.setHeader(b"Docker-Content-Digest", digest.encode("ascii"))
    request.setHeader(b"ETag", f'"{digest}"'.encode("ascii"))


def etagMatches(request: IRequest, digest: str) -> bool:
    """True when If-None-Match names this digest (quoted or not), so a 304 will do."""
    value = header(request, "If-None-Match")
    if not value:
        return False
    candidates = {part.strip().removeprefix("W/").strip('"') for part in value.split(",")}
    return digest in candidates or "*" in candidates


@endpoint(needs.nothing)
async def apiBase(api: RegistryAPI, request: IRequest) -> bytes | None:
    """C{GET /v2/}: the API version check."""
    # distribution writes this one literally, without the encoder's newline.
    body = jsonAnswer(request, {})[:-1]
    request.setHeader(b"Content-Length", b"%d" % (len(body),))
    return body
