"""C{/v2/<name>/referrers/<digest>}: the manifests whose subject is a digest, as an OCI image index."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.web.iweb import IRequest

from registryd.api import access as needs
from registryd.api.answers import jsonAnswer
from registryd.api.base import endpoint, queryArg
from registryd.registry.errors import ManifestUnknown, NameUnknown
from registryd.registry.names import checkDigest

if TYPE_CHECKING:
    from registryd.api.app import RegistryAPI

INDEX_TYPE = "application/vnd.oci.image.index.v1+json"


@endpoint(needs.pull)
async def listReferrers(api: RegistryAPI, request: IRequest, name: str, digest: str) -> bytes | None:
    """C{GET}: an image index of referrers, empty when none (the spec forbids a 404 here)."""
    manifests = api.registry.repository(name).manifests
    checkDigest(digest)
    artifactType = queryArg(request, "artifactType") or None
    try:
        descriptors = list(await manifests.referrers(digest, artifactType))
    except (NameUnknown, ManifestUnknown):
        descriptors = []
    if artifactType is not None:
        request.setHeader(b"OCI-Filters-Applied", b"artifactType")
    index = {"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": descriptors}
    return jsonAnswer(request, index, contentType=INDEX_TYPE.encode("ascii"))
