"""
How answers are written: JSON documents and empty bodies, shaped byte for byte as
distribution writes them (compact JSON, a trailing newline, UTF-8 declared).
"""

from __future__ import annotations

import json
from typing import Any

from twisted.web.iweb import IRequest

JSON = b"application/json; charset=utf-8"


def encodeJSON(document: Any) -> bytes:
    """A document as distribution's Go encoder writes it: compact, then a newline."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


def jsonAnswer(request: IRequest, document: Any, contentType: bytes = JSON, status: int = 200) -> bytes:
    """Set status and headers for a JSON answer; return its body."""
    body = encodeJSON(document)
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", contentType)
    request.setHeader(b"Content-Length", b"%d" % (len(body),))
    return body


def emptyAnswer(request: IRequest, status: int) -> None:
    """Answer with no body."""
    request.setResponseCode(status)
    request.setHeader(b"Content-Length", b"0")
    return None
