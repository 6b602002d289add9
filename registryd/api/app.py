"""
The registry's HTTP API (Docker Registry HTTP API v2 / OCI Distribution 1.1) as a Klein
app: the route table, and the resource the daemon mounts under C{http.prefix}.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from klein import Klein
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from werkzeug.exceptions import MethodNotAllowed, NotFound

from registryd.api import base, blobs, catalog, manifests, referrers, tags, uploads
from registryd.api.converters import CONVERTERS
from registryd.api.errors import writeError
from registryd.api.settings import APISettings
from registryd.registry.errors import Unsupported
from registryd.registry.interfaces import IRegistry

_NAME = "<repository:name>"
_READ = ("GET", "HEAD")

# The route table: path, methods, endpoint name, handler. Handlers live in one module per
# resource kind; each takes (api, request, **routeValues).
_ROUTES = (
    ("/v2/", _READ, "base", base.apiBase),
    ("/v2/_catalog", _READ, "catalog", catalog.listRepositories),
    (f"/v2/{_NAME}/tags/list", _READ, "tags", tags.listTags),
    (f"/v2/{_NAME}/manifests/<reference>", _READ, "manifest.get", manifests.getManifest),
    (f"/v2/{_NAME}/manifests/<reference>", ("PUT",), "manifest.put", manifests.putManifest),
    (f"/v2/{_NAME}/manifests/<reference>", ("DELETE",), "manifest.delete", manifests.deleteManifest),
    (f"/v2/{_NAME}/blobs/uploads/", ("POST",), "uploads.start", uploads.startUpload),
    (f"/v2/{_NAME}/blobs/uploads/<uuid>", _READ, "upload.get", uploads.getUpload),
    (f"/v2/{_NAME}/blobs/uploads/<uuid>", ("PATCH",), "upload.patch", uploads.patchUpload),
    (f"/v2/{_NAME}/blobs/uploads/<uuid>", ("PUT",), "upload.put", uploads.finishUpload),
    (f"/v2/{_NAME}/blobs/uploads/<uuid>", ("DELETE",), "upload.delete", uploads.cancelUpload),
    (f"/v2/{_NAME}/blobs/<digest>", _READ, "blob.get", blobs.getBlob),
    (f"/v2/{_NAME}/blobs/<digest>", ("DELETE",), "blob.delete", blobs.deleteBlob),
    (f"/v2/{_NAME}/referrers/<digest>", _READ, "referrers", referrers.listReferrers),
)


def named(name: str, handler: Callable[..., object]) -> Callable[..., object]:
    """
    The handler, noting on the request which route it serves and for which repository: the
    access log and the metrics read it there (L{registryd.web.accesslog.routeOf}) instead of
    matching the URL a second time (a sixth of a blob HEAD's time in the reactor).
    """

    @functools.wraps(handler)
    def routed(api: RegistryAPI, request: IRequest, **values: object) -> object:
        repository = values.get("name")
        request.registryRoute = (name, None if repository is None else str(repository))
        return handler(api, request, **values)

    return routed


class RegistryAPI:
    """
    The v2 API over one L{IRegistry}.

    @ivar registry: the core every route calls.
    @ivar settings: the L{APISettings} of the daemon.
    """

    app = Klein()
    app.url_map.converters.update(CONVERTERS)

    def __init__(self, registry: IRegistry, settings: APISettings | None = None) -> None:
        self.registry = registry
        self.settings = settings if settings is not None else APISettings()

    def resource(self) -> IResource:
        """The resource serving the API: every answer carries the API version and configured headers."""
        headers = [base.API_VERSION_HEADER]
        for name, values in self.settings.headers.items():
            headers.append((name.encode("latin-1"), [v.encode("latin-1") for v in values]))
        return _HeadersResource(self.app.resource(), headers)

    for path, methods, name, handler in _ROUTES:
        app.route(path, methods=list(methods), endpoint=name)(named(name, handler))
    del path, methods, name, handler

    @app.handle_errors(NotFound)
    def notFound(self, request: IRequest, failure: object) -> bytes:
        """No route: as distribution (Go's mux), a plain 404."""
        request.setResponseCode(404)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return b"404 page not found\n"

    @app.handle_errors(MethodNotAllowed)
    def methodNotAllowed(self, request: IRequest, failure: object) -> bytes:
        """A route without this method: 405 UNSUPPORTED, as distribution."""
        return writeError(request, Unsupported({"method": request.method.decode("latin-1")}))


class _HeadersResource(Resource):
    """Adds the headers every answer carries, then lets the Klein resource route the request."""

    isLeaf = True

    def __init__(self, inner: IResource, headers: list[tuple[bytes, list[bytes]]]) -> None:
        super().__init__()
        self._inner = inner
        self._headers = headers

    def render(self, request: IRequest) -> object:
        for name, values in self._headers:
            request.responseHeaders.setRawHeaders(name, values)
        # Go's server names no Content-Type for an empty answer; twisted.web would say text/html.
        request.defaultContentType = None
        return self._inner.render(request)
