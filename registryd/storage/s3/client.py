"""
Signed S3 requests over treq: botocore signs (SigV4, or SigV2 with v4auth off), Twisted sends.

botocore is used for signing and credentials only; no botocore HTTP is ever made, so the
reactor is never blocked by it.
"""

from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import treq
from botocore.auth import HmacV1Auth, HmacV1QueryAuth, S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from twisted.internet.ssl import CertificateOptions
from twisted.logger import Logger
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from registryd.storage.interfaces import StorageDriverError
from registryd.storage.objectstore import sendOverPool
from registryd.storage.s3.config import S3Settings

#: Bodies up to this size are hashed into the signature; bigger ones are sent UNSIGNED-PAYLOAD
#: so a part upload never hashes megabytes on the reactor thread.
_HASHED_BODY_LIMIT = 64 * 1024
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@implementer(IPolicyForHTTPS)
class _NoVerification:
    """TLS without certificate checks, for skipverify: true."""

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        return _Creator()


class _Creator:
    """A client connection creator that accepts any certificate."""

    def __init__(self) -> None:
        self._options = CertificateOptions(verify=False)

    def clientConnectionForTLS(self, tlsProtocol: Any) -> Any:
        from OpenSSL.SSL import Connection

        connection = Connection(self._options.getContext(), None)
        connection.set_app_data(tlsProtocol)
        connection.set_connect_state()
        return connection


@dataclass
class S3Response:
    """A finished S3 response: status, headers (lower-cased names, first value) and body."""

    status: int
    headers: dict[str, str]
    body: bytes


class S3Error(StorageDriverError):
    """S3 answered with an error; C{status} and C{code} say which."""

    def __init__(self, driverName: str, path: str | None, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        super().__init__(driverName, path, f"S3 {status} {code}: {message}".rstrip(": "))


def parseXML(body: bytes) -> ElementTree.Element:
    """Parse an S3 XML document, dropping namespaces so tags read plainly."""
    root = ElementTree.fromstring(body)
    for element in root.iter():
        if isinstance(element.tag, str) and "}" in element.tag:
            element.tag = element.tag.split("}", 1)[1]
    return root


def text(element: ElementTree.Element, tag: str, default: str = "") -> str:
    """The text of element's child tag, or default."""
    child = element.find(tag)
    return child.text or "" if child is not None and child.text is not None else default


def headerMap(response: Any) -> dict[str, str]:
    """A treq response's headers as a plain dict of lower-cased name to first value."""
    result = {}
    for name, values in response.headers.getAllRawHeaders():
        result[name.decode("latin-1").lower()] = values[0].decode("latin-1")
    return result


def encodeQuery(query: Mapping[str, str | int | None]) -> str:
    """
    A query string S3 and the signer agree on: sorted, every value percent-encoded, and a key
    without a value bare (C{?uploads}, C{?delete}): signature version 2 signs sub-resources as
    written, and radosgw refuses C{uploads=} signed for C{uploads}.
    """
    pairs = []
    for key in sorted(query):
        value = query[key]
        name = quote(key, safe="-_.~")
        if value is None or value == "":
            pairs.append(name)
        else:
            pairs.append(f"{name}={quote(str(value), safe='-_.~')}")
    return "&".join(pairs)


class S3Client:
    """Sends signed requests to one bucket."""

    log = Logger()

    def __init__(self, reactor: Any, settings: S3Settings, credentials: Any) -> None:
        self.settings = settings
        self.name = settings.name
        self._credentials = credentials
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = 16
        policy = _NoVerification() if settings.skipVerify else BrowserLikePolicyForHTTPS()
        self._http = treq.client.HTTPClient(Agent(reactor, contextFactory=policy, pool=self.pool))

    def close(self) -> Any:
        """Close the kept-alive connections. @return: Deferred firing None."""
        return self.pool.closeCachedConnections()

    def url(
        self, key: str | None, query: Mapping[str, Any] | None = None, endpoint: str | None = None
    ) -> str:
        """The URL of the bucket (key None) or of an object, with query."""
        endpoint = endpoint or self.settings.endpoint
        path = "" if key is None else quote(key, safe="/-_.~")
        if self.settings.pathStyle:
            url = f"{endpoint}/{self.settings.bucket}/{path}"
        else:
            scheme, host = endpoint.split("://", 1)
            url = f"{scheme}://{self.settings.bucket}.{host}/{path}"
        if query:
            url += "?" + encodeQuery(query)
        return url

    def _frozenCredentials(self) -> Any:
        credentials = self._credentials
        if credentials is None:
            raise StorageDriverError(self.name, None, "no AWS credentials: set accesskey and secretkey")
        return credentials.get_frozen_credentials()

    def _sign(self, method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        request = AWSRequest(method=method, url=url, headers=headers, data=body)
        credentials = self._frozenCredentials()
        if self.settings.v4auth:
            if len(body) <= _HASHED_BODY_LIMIT:
                digest = hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256
            else:
                digest = "UNSIGNED-PAYLOAD"
            request.headers["X-Amz-Content-SHA256"] = digest
            SigV4Auth(credentials, "s3", self.settings.region).add_auth(request)
        else:
            HmacV1Auth(credentials).add_auth(request)
        return dict(request.headers.items())

    def presign(self, key: str, expires: int = 1200) -> str:
        """A presigned GET URL for an object, on redirectendpoint when configured."""
        url = self.url(key, endpoint=self.settings.redirectEndpoint)
        request = AWSRequest(method="GET", url=url)
        credentials = self._frozenCredentials()
        if self.settings.v4auth:
            S3SigV4QueryAuth(credentials, "s3", self.settings.region, expires=expires).add_auth(request)
        else:
            HmacV1QueryAuth(credentials, expires=expires).add_auth(request)
        return request.url

    async def send(
        self,
        method: str,
        key: str | None,
        query: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        path: str | None = None,
        expect: tuple[int, ...] = (200,),
        stream: bool = False,
    ) -> Any:
        """
        Send one signed request. With C{stream}, return treq's response unread (its body for the
        caller to deliver); otherwise an L{S3Response}. A status outside C{expect} raises L{S3Error}.
        """
        url = self.url(key, query)
        headers = dict(headers or {})
        if self.settings.userAgent:
            headers["User-Agent"] = self.settings.userAgent
        body = bytes(body)
        if method in ("PUT", "POST"):
            headers.setdefault("Content-Length", str(len(body)))
        signed = self._sign(method, url, headers, body)
        if self.settings.logLevel != "off":
            shown = signed if self.settings.logLevel == "debugwithsigning" else headers
            self.log.debug("s3 {method} {url} {headers}", method=method, url=url, headers=shown)
        signed.pop("Content-Length", None)
        response = await sendOverPool(
            lambda: self._http.request(
                method, url, headers={k: [v] for k, v in signed.items()}, data=body if body else None
            )
        )
        if stream and response.code in expect:
            return response
        content = await treq.content(response)
        if self.settings.logLevel != "off":
            self.log.debug("s3 {method} {url} -> {status}", method=method, url=url, status=response.code)
        if response.code not in expect:
            raise self.error(response.code, content, path)
        return S3Response(response.code, headerMap(response), content)

    def error(self, status: int, body: bytes, path: str | None) -> S3Error:
        """The error for an S3 error response."""
        code, message = "", ""
        if body:
            try:
                root = parseXML(body)
                code, message = text(root, "Code"), text(root, "Message")
            except ElementTree.ParseError:
                message = body[:200].decode("utf-8", "replace")
        return S3Error(self.name, path, status, code or "Error", message)


def contentMD5(body: bytes) -> str:
    """The Content-MD5 header S3 requires on DeleteObjects."""
    return base64.b64encode(hashlib.md5(body).digest()).decode("ascii")


def staticCredentials(accessKey: str, secretKey: str) -> Credentials:
    """Credentials from the configuration's keys."""
    return Credentials(accessKey, secretKey)
