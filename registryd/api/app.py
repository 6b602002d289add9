"""
The registry's HTTP API (Docker Registry HTTP API v2 / OCI Distribution 1.1) as a Klein
app: the route table, and the resource the daemon mounts under C{http.prefix}.
"""

from __future__ import annotations

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

    # The route table. Handlers live in one module per resource kind; each takes
    # (api, request, **routeValues).
    app.route("/v2/", methods=["GET", "HEAD"], endpoint="base")(base.apiBase)
    app.route("/v2/_catalog", methods=["GET", "HEAD"], endpoint="catalog")(catalog.listRepositories)
    app.route(f"/v2/{_NAME}/tags/list", methods=["GET", "HEAD"], endpoint="tags")(tags.listTags)
    app.route(f"/v2/{_NAME}/manifests/<reference>", methods=["GET", "HEAD"], endpoint="manifest.get")(
        manifests.getManifest
    )
    app.route(f"/v2/{_NAME}/manifests/<reference>", methods=["PUT"], endpoint="manifest.put")(
        manifests.putManifest
    )
    app.route(f"/v2/{_NAME}/manifests/<reference>", methods=["DELETE"], endpoint="manifest.delete")(
        manifests.deleteManifest
    )
    app.route(f"/v2/{_NAME}/blobs/uploads/", methods=["POST"], endpoint="uploads.start")(uploads.startUpload)
    app.route(f"/v2/{_NAME}/blobs/uploads/<uuid>", methods=["GET", "HEAD"], endpoint="upload.get")(
        uploads.getUpload
    )
    app.route(f"/v2/{_NAME}/blobs/uploads/<uuid>", methods=["PATCH"], endpoint="upload.patch")(
        uploads.patchUpload
    )
    app.route(f"/v2/{_NAME}/blobs/uploads/<uuid>", methods=["PUT"], endpoint="upload.put")(
        uploads.finishUpload
    )
    app.route(f"/v2/{_NAME}/blobs/uploads/<uuid>", methods=["DELETE"], endpoint="upload.delete")(
        uploads.cancelUpload
    )
    app.route(f"/v2/{_NAME}/blobs/<digest>", methods=["GET", "HEAD"], endpoint="blob.get")(blobs.getBlob)
    app.route(f"/v2/{_NAME}/blobs/<digest>", methods=["DELETE"], endpoint="blob.delete")(blobs.deleteBlob)
    app.route(f"/v2/{_NAME}/referrers/<digest>", methods=["GET", "HEAD"], endpoint="referrers")(
        referrers.listReferrers
    )

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
