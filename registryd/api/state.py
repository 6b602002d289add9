"""
The C{_state} token of upload URLs: the upload's repository, id, offset and start time,
HMAC-signed with C{http.secret} so that any registry process sharing the storage and
the secret recognises a URL it handed out, and no client can forge one for an upload
of another repository.

The token is distribution's: URL-safe base64 (padded) of the HMAC-SHA256 and the JSON it
signs, whose field names distribution reads without regard to case (Go's encoding/json), as
we read its C{Name}/C{UUID}/C{Offset}/C{StartedAt}. So with the same secret, an upload begun
on one registry goes on on the other (a migration behind one load balancer).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

from registryd.registry.errors import BlobUploadInvalid

_MAC_SIZE = hashlib.sha256().digest_size


@dataclass(frozen=True)
class UploadState:
    """What an upload URL remembers; the real offset is always read back from storage."""

    name: str
    uuid: str
    offset: int
    startedAt: str


def packState(secret: bytes, state: UploadState) -> str:
    """Sign and encode state as URL-safe text."""
    payload = json.dumps(
        {"name": state.name, "uuid": state.uuid, "offset": state.offset, "startedAt": state.startedAt},
        separators=(",", ":"),
    ).encode("utf-8")
    mac = hmac.new(secret, payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac + payload).decode("ascii")


def unpackState(secret: bytes, token: str) -> UploadState:
    """Decode and verify a token. @raise BlobUploadInvalid: when it is malformed or not ours."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        raise BlobUploadInvalid("upload state is not valid base64") from None
    mac, payload = raw[:_MAC_SIZE], raw[_MAC_SIZE:]
    expected = hmac.new(secret, payload, hashlib.sha256).digest()
    if len(mac) != _MAC_SIZE or not hmac.compare_digest(mac, expected):
        raise BlobUploadInvalid("upload state signature does not verify")
    try:
        fields = {str(key).lower(): value for key, value in json.loads(payload).items()}
        return UploadState(
            name=str(fields["name"]),
            uuid=str(fields["uuid"]),
            offset=int(fields["offset"]),
            startedAt=str(fields["startedat"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BlobUploadInvalid("upload state is malformed") from None
