"""
The access log: one line per answered request, in Apache's combined log format followed
by what a registry operator asks next (request id, repository, API route, duration):

    127.0.0.1 - alice [02/Jan/2025:15:04:05 +0000] "GET /v2/app/manifests/1 HTTP/1.1" 200 1234 "-"
    "skopeo/1.13" id=6f1c... repository=app route=manifest.get duration=0.004 in=0

(one line; wrapped here). In the C{json} and C{logstash} log formats each item is also a
JSON field of its own (see L{registryd.config.log}). The same L{RequestRecord} feeds the
request metrics, so a route label is the API's route name, never a raw path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.logger import Logger

from registryd.auth.interfaces import identityOf
from registryd.config.log import FIELDS_KEY, PLAIN_KEY
from registryd.web.request import requestIDOf

log = Logger(namespace="registryd.access")

UNMATCHED = "unmatched"
"""The route of a request no API route matched (a 404, or a path outside C{http.prefix})."""

CLIENT_CLOSED = 499
"""The status recorded for a request whose client went away before the answer ended (as nginx)."""

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class RequestRecord:
    """What one request was and how it went, for the access log and the metrics."""

    requestID: str
    remote: str
    user: str | None
    method: str
    uri: str
    protocol: str
    status: int
    bytesSent: int
    bytesReceived: int
    duration: float | None
    route: str
    repository: str | None
    referer: str | None
    userAgent: str | None


def routeOf(request: Any) -> tuple[str, str | None]:
    """The API route name the request matched (e.g. C{manifest.get}) and its repository, if any."""
    recorded = getattr(request, "registryRoute", None)
    if recorded is not None:
        return recorded  # noted by the route itself (registryd.api.app.named)
    try:
        from klein.interfaces import IKleinRequest

        mapper = getattr(IKleinRequest(request, None), "mapper", None)
    except TypeError:
        mapper = None
    if mapper is None:
        return UNMATCHED, None
    from werkzeug.exceptions import HTTPException

    try:
        rule, values = mapper.match(return_rule=True)
    except HTTPException:
        return UNMATCHED, None
    repository = values.get("name")
    return str(rule.endpoint), None if repository is None else str(repository)


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _bytesReceived(request: Any) -> int:
    content = getattr(request, "content", None)
    received = getattr(content, "received", None)
    if isinstance(received, int):
        return received
    length = _text(request.getHeader(b"content-length"))
    return int(length) if length and length.isascii() and length.isdigit() else 0


def recordOf(request: Any, started: float | None, ended: float, status: int | None = None) -> RequestRecord:
    """Describe a finished (or abandoned, with C{status} L{CLIENT_CLOSED}) request."""
    address = request.getClientAddress()
    remote = address.host if isinstance(address, IPv4Address | IPv6Address) else "-"
    route, repository = routeOf(request)
    return RequestRecord(
        requestID=requestIDOf(request),
        remote=remote,
        user=identityOf(request).name,
        method=_text(request.method) or "-",
        uri=_text(request.uri) or "-",
        protocol=_text(request.clientproto) or "-",
        status=getattr(request, "code", 200) if status is None else status,
        bytesSent=getattr(request, "sentLength", 0),
        bytesReceived=_bytesReceived(request),
        duration=None if started is None else max(0.0, ended - started),
        route=route,
        repository=repository,
        referer=_text(request.getHeader(b"referer")),
        userAgent=_text(request.getHeader(b"user-agent")),
    )


def _quoted(value: str | None) -> str:
    if value is None:
        return '"-"'
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    if escaped.isprintable():
        return f'"{escaped}"'
    # No control character may break the one-line promise.
    return '"' + "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in escaped) + '"'


def _token(value: str | None) -> str:
    """A space-free field: the value with spaces and control characters escaped, or '-'."""
    if not value:
        return "-"
    if value.isprintable() and " " not in value:
        return value
    return "".join(c if c.isprintable() and c != " " else f"\\x{ord(c):02x}" for c in value)


def combinedTimestamp(when: float) -> str:
    """C{[02/Jan/2025:15:04:05 +0000]}: the combined log format's time, in UTC."""
    t = time.gmtime(when)
    return f"[{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:" + time.strftime("%H:%M:%S +0000]", t)


def combinedLine(record: RequestRecord, when: float) -> str:
    """The record as one combined-log line with the registry's fields appended."""
    request = f"{record.method} {record.uri} {record.protocol}"
    duration = "-" if record.duration is None else f"{record.duration:.3f}"
    return (
        f"{_token(record.remote)} - {_token(record.user)} {combinedTimestamp(when)} {_quoted(request)}"
        f" {record.status} {record.bytesSent or '-'} {_quoted(record.referer)} {_quoted(record.userAgent)}"
        f" id={record.requestID} repository={_token(record.repository)} route={record.route}"
        f" duration={duration} in={record.bytesReceived}"
    )


def jsonFields(record: RequestRecord) -> dict[str, Any]:
    """The record as the JSON fields of an access-log event."""
    return {
        "request_id": record.requestID,
        "remote_addr": record.remote,
        "user": record.user,
        "method": record.method,
        "uri": record.uri,
        "protocol": record.protocol,
        "status": record.status,
        "bytes_sent": record.bytesSent,
        "bytes_received": record.bytesReceived,
        "duration": record.duration,
        "route": record.route,
        "repository": record.repository,
        "referer": record.referer,
        "user_agent": record.userAgent,
    }


def logAccess(record: RequestRecord, when: float) -> None:
    """Emit the access-log line of a request (text mode writes it as it is; JSON adds the fields)."""
    log.info(
        "{accessLine}",
        accessLine=combinedLine(record, when),
        **{PLAIN_KEY: True, FIELDS_KEY: jsonFields(record)},
    )


__all__ = [
    "CLIENT_CLOSED",
    "UNMATCHED",
    "RequestRecord",
    "combinedLine",
    "combinedTimestamp",
    "jsonFields",
    "logAccess",
    "recordOf",
    "routeOf",
]
