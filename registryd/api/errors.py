"""
The registry's errors as HTTP answers: one table from each L{RegistryError} to its
status, and the spec's JSON body C{{"errors": [{"code", "message", "detail"}]}}.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.web.iweb import IRequest

from registryd.api.answers import jsonAnswer
from registryd.registry import errors

# The statuses of distribution's errcode registrations (registry/api/v2/errors.go and
# registry/api/errcode/register.go). Looked up along the class's MRO, so a subclass of a
# listed error (ManifestTooLarge is a SIZE_INVALID) can have a status of its own.
STATUS: dict[type[errors.RegistryError], int] = {
    errors.ManifestTooLarge: 413,
    errors.BlobUnknown: 404,
    errors.BlobUploadInvalid: 400,
    errors.BlobUploadUnknown: 404,
    errors.DigestInvalid: 400,
    errors.ManifestBlobUnknown: 400,
    errors.ManifestInvalid: 400,
    errors.ManifestUnknown: 404,
    errors.ManifestUnverified: 400,
    errors.NameInvalid: 400,
    errors.NameUnknown: 404,
    errors.SizeInvalid: 400,
    errors.TagInvalid: 400,
    errors.Unauthorized: 401,
    errors.Denied: 403,
    errors.Unsupported: 405,
    errors.TooManyRequests: 429,
    errors.RangeInvalid: 416,
    errors.PaginationNumberInvalid: 400,
    errors.Unavailable: 503,
    errors.RegistryError: 500,
}


def statusFor(error: errors.RegistryError) -> int:
    """The HTTP status the spec gives an error."""
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def errorDocument(*failures: errors.RegistryError) -> dict[str, Any]:
    """The spec's JSON error document for one or more errors."""
    return {
        "errors": [
            {"code": error.code, "message": error.message, "detail": _jsonable(error.detail)}
            for error in failures
        ]
    }


def writeError(request: IRequest, error: errors.RegistryError) -> bytes:
    """Set the status and headers of an error answer; return its body."""
    for name, value in error.headers:
        request.setHeader(name, value)
    return jsonAnswer(request, errorDocument(error), status=statusFor(error))


def _jsonable(detail: Any) -> Any:
    """Details are meant to be JSON already; anything else is shown as text rather than failing."""
    try:
        json.dumps(detail)
    except (TypeError, ValueError):
        return str(detail)
    return detail
