"""
The registry's domain errors, one per error code of the distribution / OCI specs.

The core raises these; the API layer turns them into the spec's JSON body and status
(L{registryd.api.errors}). They know nothing of HTTP: the status lives with the API.
"""

from __future__ import annotations

from typing import Any


class RegistryError(Exception):
    """
    An error with one of the spec's codes.

    @cvar code: the spec's error code, e.g. C{"BLOB_UNKNOWN"}.
    @cvar message: the spec's human-readable message for the code.
    @ivar detail: extra, unstructured information (JSON-serialisable) or None.
    """

    code = "UNKNOWN"
    message = "unknown error"
    headers: tuple[tuple[bytes, bytes], ...] = ()
    """Extra response headers the answer carries (an authentication challenge, say)."""

    def __init__(self, detail: Any = None, message: str | None = None) -> None:
        self.detail = detail
        if message is not None:
            self.message = message
        super().__init__(self.code, self.message, detail)

    def __str__(self) -> str:
        if self.detail is None:
            return f"{self.code}: {self.message}"
        return f"{self.code}: {self.message}: {self.detail}"


def _error(code: str, message: str) -> type[RegistryError]:
    return type(
        "".join(part.title() for part in code.split("_")),
        (RegistryError,),
        {"code": code, "message": message, "__doc__": message},
    )


BlobUnknown = _error("BLOB_UNKNOWN", "blob unknown to registry")
BlobUploadInvalid = _error("BLOB_UPLOAD_INVALID", "blob upload invalid")
BlobUploadUnknown = _error("BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry")
DigestInvalid = _error("DIGEST_INVALID", "provided digest did not match uploaded content")
ManifestBlobUnknown = _error(
    "MANIFEST_BLOB_UNKNOWN", "manifest references a manifest or blob unknown to registry"
)
ManifestInvalid = _error("MANIFEST_INVALID", "manifest invalid")
ManifestUnknown = _error("MANIFEST_UNKNOWN", "manifest unknown to registry")
ManifestUnverified = _error("MANIFEST_UNVERIFIED", "manifest failed signature verification")
NameInvalid = _error("NAME_INVALID", "invalid repository name")
NameUnknown = _error("NAME_UNKNOWN", "repository name not known to registry")
SizeInvalid = _error("SIZE_INVALID", "provided length did not match content length")
TagInvalid = _error("TAG_INVALID", "manifest tag did not match URI")
Unauthorized = _error("UNAUTHORIZED", "authentication required")
Denied = _error("DENIED", "requested access to the resource is denied")
Unsupported = _error("UNSUPPORTED", "The operation is unsupported.")
TooManyRequests = _error("TOOMANYREQUESTS", "too many requests")
RangeInvalid = _error("RANGE_INVALID", "invalid content range")
PaginationNumberInvalid = _error("PAGINATION_NUMBER_INVALID", "invalid number of results requested")
Unavailable = _error("UNAVAILABLE", "service unavailable")


class ManifestTooLarge(RegistryError):
    """A manifest body over the size limit (4 MiB); answered with 413."""

    code = "SIZE_INVALID"
    message = "manifest too large"
