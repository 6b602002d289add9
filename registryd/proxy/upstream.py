"""
L{HTTPUpstream}: one upstream registry over HTTP(S), for the pull-through cache.

It authenticates as registry clients do (distribution's, containerd's): a request goes out,
a 401 names the scheme (Basic, or a Bearer realm to get a token from), the request is retried
with credentials, and the challenge is remembered so later requests send them up front. Bearer
tokens are cached per (realm, service, scope). TLS is verified against the system's trust store
plus an optional CA file.

Where credentials go: the configured username and password are sent to the upstream itself,
and to a token realm only if the realm is https or on the upstream's own host (over plain HTTP
to another host they would cross the network in the clear; the token request is then made
anonymously and a warning logged). Bearer tokens and basic credentials are never forwarded on
a redirect to another origin (S3 presigned URLs, CDNs refuse them anyway).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

# Twisted's trust-root interface lives in a private module; no public way adds a CA file to the system's.
from twisted.internet._sslverify import IOpenSSLTrustRoot
from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.error import ConnectError, ConnectingCancelledError, DNSLookupError
from twisted.internet.ssl import optionsForClientTLS, platformTrust
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool, ResponseFailed, ResponseNeverReceived
from twisted.web.http_headers import Headers
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from registryd.proxy.body import BodyStream, streamBody
from registryd.proxy.challenges import Challenge, parseChallenges, preferred
from registryd.proxy.interfaces import IUpstream, IUpstreamBlob, IUpstreamManifest, UpstreamUnavailable
from registryd.proxy.tokens import TokenAnswerInvalid, TokenCache, TokenKey, parseTokenAnswer
from registryd.registry.errors import BlobUnknown, DigestInvalid, ManifestUnknown
from registryd.registry.names import digestOf, isDigest, parseDigest
from registryd.registry.schema import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    MAX_MANIFEST_SIZE,
    OCI_INDEX,
    OCI_MANIFEST,
)

#: What a manifest request accepts unless told otherwise: every type registryd stores.
MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)

#: Seconds to wait for a TCP connection (and TLS handshake) to an upstream.
CONNECT_TIMEOUT = 10.0
#: Seconds an upstream may stay silent (no response head, no body bytes) before we give up.
READ_TIMEOUT = 60.0
#: Redirects followed for one request.
MAX_REDIRECTS = 5
#: How much of an error or redirect body is read (and discarded, but for its error codes).
SMALL_BODY_LIMIT = 64 * 1024
#: Connections kept open per upstream host.
PERSISTENT_PER_HOST = 8

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_UNREACHABLE = (ConnectError, ConnectingCancelledError, DNSLookupError, ResponseFailed, ResponseNeverReceived)


def _defaultUserAgent() -> str:
    from registryd.cli import version

    return f"registryd/{version()}"


@implementer(IOpenSSLTrustRoot)
class _SystemAndFileTrust:
    """The system's trust store plus the CA certificates of some PEM files."""

    def __init__(self, paths: Sequence[str]) -> None:
        self._paths = tuple(paths)

    def _addCACertsToContext(self, context: Any) -> None:
        context.set_default_verify_paths()
        for path in self._paths:
            context.load_verify_locations(path)


@implementer(IPolicyForHTTPS)
class _VerifyingPolicy:
    """TLS verified for every host (the upstream, its token realm, redirect targets)."""

    def __init__(self, trustRoot: Any) -> None:
        self._trustRoot = trustRoot

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        return optionsForClientTLS(hostname.decode("ascii"), trustRoot=self._trustRoot)


def _trustRoot(caCertificates: str | Sequence[str] | None) -> Any:
    """The trust root: the system's, plus caCertificates (read now, so a bad file fails at start-up)."""
    paths = (caCertificates,) if isinstance(caCertificates, str) else tuple(caCertificates or ())
    if not paths:
        return platformTrust()
    from cryptography import x509

    for path in paths:
        try:
            with open(path, "rb") as f:
                x509.load_pem_x509_certificates(f.read())
        except OSError as e:
            raise ValueError(f"cannot read CA certificates {path}: {e.strerror or e}") from None
        except ValueError:
            raise ValueError(f"{path} holds no PEM certificate") from None
    return _SystemAndFileTrust(paths)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def _reason(failure: Failure) -> str:
    """A one-line account of a failed exchange, the inner reasons of Twisted's wrappers included."""
    reasons = getattr(failure.value, "reasons", None)
    if reasons:
        return "; ".join(_reason(r) for r in reasons)
    return failure.getErrorMessage() or failure.type.__name__


def _errorCodes(body: bytes) -> list[str]:
    """The C{code} of each error in a registry error body (none if it is not one)."""
    import json

    try:
        errors = json.loads(body).get("errors", [])
        return [str(error.get("code")) for error in errors if isinstance(error, dict)]
    except (ValueError, AttributeError):
        return []


@implementer(IUpstreamManifest)
@dataclass(frozen=True)
class UpstreamManifest:
    """A manifest as the upstream answered it (C{content} None for a HEAD)."""

    digest: str
    mediaType: str
    size: int
    content: bytes | None


@implementer(IUpstreamBlob)
class UpstreamBlob:
    """A blob response whose body is read chunk by chunk, the connection paused in between."""

    def __init__(self, digest: str, size: int | None, mediaType: str | None, stream: BodyStream) -> None:
        self.digest = digest
        self.size = size
        self.mediaType = mediaType
        self.stream = stream

    def read(self) -> Deferred:
        return self.stream.read()

    def cancel(self) -> None:
        self.stream.cancel()


@implementer(IUpstream)
class HTTPUpstream:
    """
    One upstream registry at C{url}, reached through a pool of persistent connections.

    @param caCertificates: PEM files (one path or several) of CA certificates trusted besides
        the system's; ValueError at once if one cannot be read or holds no certificate.
    @param readTimeout: seconds the upstream may stay silent before a request fails.
    @param clock: seconds for the token cache (tests pass a fake); the reactor's by default.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        url: str,
        username: str | None = None,
        password: str | None = None,
        *,
        caCertificates: str | Sequence[str] | None = None,
        userAgent: str | None = None,
        readTimeout: float = READ_TIMEOUT,
        clock: Any = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream URL {url!r} is not an http(s) URL")
        self.url = url.rstrip("/")
        self._reactor = reactor
        self._credentials = (username, password or "") if username else None
        self._userAgent = userAgent or _defaultUserAgent()
        self._readTimeout = readTimeout
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = PERSISTENT_PER_HOST
        # Twisted's Agent itself rather than treq's HTTPClient: treq always asks for gzip and
        # decodes it, and blob bytes and their Content-Length must arrive as the upstream holds them.
        self._agent = Agent(
            reactor,
            contextFactory=_VerifyingPolicy(_trustRoot(caCertificates)),
            connectTimeout=CONNECT_TIMEOUT,
            pool=self._pool,
        )
        self.tokens = TokenCache((clock or reactor).seconds)
        self._tokenRequests: dict[TokenKey, list[Deferred]] = {}
        #: The challenge the upstream answered 401 with, answered up front from then on.
        self.challenge: Challenge | None = None

    def __repr__(self) -> str:
        return f"<HTTPUpstream {self.url}>"

    # -- IUpstream -----------------------------------------------------------------------

    def manifest(
        self, name: str, reference: str, method: str = "GET", accept: Sequence[str] | str | None = None
    ) -> Deferred:
        return Deferred.fromCoroutine(self._manifest(name, reference, method.upper(), accept))

    def blob(self, name: str, digest: str) -> Deferred:
        return Deferred.fromCoroutine(self._blob(name, digest))

    def close(self) -> Deferred:
        return self._pool.closeCachedConnections()

    # -- manifests and blobs -------------------------------------------------------------

    async def _manifest(
        self, name: str, reference: str, method: str, accept: Sequence[str] | str | None
    ) -> UpstreamManifest:
        if accept is None:
            accept = MANIFEST_TYPES
        acceptHeader = accept if isinstance(accept, str) else ", ".join(accept)
        path = f"/v2/{name}/manifests/{reference}"
        response = await self._fetch(method, name, path, {"Accept": acceptHeader})
        await self._expectSuccess(response, path, ManifestUnknown)
        mediaType = self._header(response, "Content-Type") or ""
        announced = self._header(response, "Docker-Content-Digest")
        if announced is not None and not self._validDigest(announced):
            announced = None
        wanted = reference if isDigest(reference) else None
        if method == "HEAD":
            await self._discard(response)
            # A HEAD's body is empty; its Content-Length is the manifest's.
            length = self._header(response, "Content-Length") or ""
            if announced is None or not length.isdigit():
                # Without a digest a HEAD says nothing the cache can use: ask for the content.
                return await self._manifest(name, reference, "GET", accept)
            if wanted is not None and announced != wanted:
                raise UpstreamUnavailable(f"{self.url}{path}: the upstream says its digest is {announced}")
            return UpstreamManifest(announced, mediaType, int(length), None)
        if isinstance(response.length, int) and response.length > MAX_MANIFEST_SIZE:
            self._stream(response, path).cancel()
            raise UpstreamUnavailable(
                f"{self.url}{path}: manifest of {response.length} bytes is over the {MAX_MANIFEST_SIZE} limit"
            )
        content = await self._stream(response, path).readAll(MAX_MANIFEST_SIZE)
        digest = wanted or announced
        if digest is None:
            return UpstreamManifest(digestOf(content), mediaType, len(content), content)
        for expected in {digest, announced} - {None}:
            computed = digestOf(content, parseDigest(expected)[0])
            if computed != expected:
                raise UpstreamUnavailable(
                    f"{self.url}{path}: the content's digest is {computed}, not {expected}"
                )
        return UpstreamManifest(digest, mediaType, len(content), content)

    async def _blob(self, name: str, digest: str) -> UpstreamBlob:
        path = f"/v2/{name}/blobs/{digest}"
        response = await self._fetch("GET", name, path, {})
        await self._expectSuccess(response, path, BlobUnknown)
        size = response.length if isinstance(response.length, int) else None
        mediaType = self._header(response, "Content-Type")
        return UpstreamBlob(digest, size, mediaType, self._stream(response, path))

    @staticmethod
    def _validDigest(text: str) -> bool:
        try:
            parseDigest(text)
        except DigestInvalid:
            return False
        return True

    # -- responses -----------------------------------------------------------------------

    @staticmethod
    def _header(response: Any, name: str) -> str | None:
        values = response.headers.getRawHeaders(name)
        return values[0].strip() if values else None

    def _stream(self, response: Any, path: str) -> BodyStream:
        return streamBody(self._reactor, response, self._readTimeout, f"{self.url}{path}")

    async def _discard(self, response: Any) -> bytes:
        """Read a small body (an error's, a redirect's) so its connection goes back to the pool."""
        try:
            return await self._stream(response, "").readAll(SMALL_BODY_LIMIT)
        except UpstreamUnavailable:
            return b""

    async def _expectSuccess(self, response: Any, path: str, unknown: type[Exception]) -> None:
        """Return on 200; raise C{unknown} on 404, L{UpstreamUnavailable} on anything else."""
        if response.code == 200:
            return
        codes = _errorCodes(await self._discard(response))
        if response.code == 404:
            raise unknown(detail={"upstream": self.url, "codes": codes})
        if response.code in (401, 403):
            raise UpstreamUnavailable(f"{self.url}{path}: access denied ({response.code} {', '.join(codes)})")
        raise UpstreamUnavailable(f"{self.url}{path}: answered {response.code} {', '.join(codes)}".rstrip())

    # -- exchanges -----------------------------------------------------------------------

    async def _send(self, method: str, url: str, headers: dict[str, str]) -> Any:
        """One request, its response head awaited; L{UpstreamUnavailable} if none comes."""
        raw = Headers({"User-Agent": [self._userAgent]})
        for key, value in headers.items():
            raw.setRawHeaders(key, [value])
        requested = self._agent.request(method.encode("ascii"), url.encode("ascii"), raw)
        timer = self._reactor.callLater(self._readTimeout, requested.cancel)
        try:
            return await requested
        except (CancelledError, TimeoutError, *_UNREACHABLE) as e:
            if not timer.active():
                raise UpstreamUnavailable(f"{url}: no answer within {self._readTimeout:g} s") from None
            raise UpstreamUnavailable(f"{url}: cannot reach the upstream: {_reason(Failure(e))}") from None
        finally:
            if timer.active():
                timer.cancel()

    async def _follow(self, method: str, url: str, headers: dict[str, str]) -> Any:
        """A request, following redirects; Authorization goes only to the upstream's own origin."""
        home = _origin(self.url)
        for _ in range(MAX_REDIRECTS + 1):
            if _origin(url) != home:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            response = await self._send(method, url, headers)
            location = self._header(response, "Location")
            if response.code not in _REDIRECTS or location is None:
                return response
            await self._discard(response)
            url = urljoin(url, location)
            if response.code == 303 and method != "HEAD":
                method = "GET"
        raise UpstreamUnavailable(f"{self.url}: more than {MAX_REDIRECTS} redirects")

    async def _fetch(self, method: str, name: str, path: str, headers: dict[str, str]) -> Any:
        """
        A request for a repository's content, authenticated: up front if the upstream challenged
        us before, else after its 401; once more with a fresh token if a cached one is refused.
        """
        scope = f"repository:{name}:pull"
        url = self.url + path
        sent = await self._authorization(self.challenge, scope) if self.challenge is not None else None
        response = await self._follow(method, url, {**headers, **(sent[0] if sent else {})})
        if response.code != 401:
            return response
        challenges = parseChallenges(response.headers.getRawHeaders("WWW-Authenticate", []))
        await self._discard(response)
        challenge = preferred(challenges)
        if challenge is None:
            raise UpstreamUnavailable(f"{url}: 401 without a Basic or Bearer challenge")
        if sent is not None and sent[1] is not None:
            self.tokens.drop(*sent[1])
        self.challenge = challenge
        authorization, _ = await self._authorization(challenge, challenge.get("scope") or scope)
        return await self._follow(method, url, {**headers, **authorization})

    async def _authorization(
        self, challenge: Challenge, scope: str
    ) -> tuple[dict[str, str], tuple[TokenKey, str] | None]:
        """The Authorization header answering challenge, and the cached token it used (if any)."""
        if challenge.scheme == "basic":
            if self._credentials is None:
                raise UpstreamUnavailable(f"{self.url}: asks for basic credentials and none are configured")
            return {"Authorization": self._basic()}, None
        realm = challenge.get("realm")
        if not realm or urlsplit(realm).scheme not in ("http", "https"):
            raise UpstreamUnavailable(f"{self.url}: bearer challenge without a usable realm ({realm!r})")
        key = (realm, challenge.get("service") or "", scope)
        token = self.tokens.get(key)
        if token is None:
            token = await self._token(key)
        return {"Authorization": f"Bearer {token}"}, (key, token)

    def _basic(self) -> str:
        assert self._credentials is not None
        user, password = self._credentials
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")

    # -- tokens --------------------------------------------------------------------------

    async def _token(self, key: TokenKey) -> str:
        """A fresh token for key; concurrent callers for one key share one token request."""
        waiting = self._tokenRequests.get(key)
        if waiting is not None:
            shared: Deferred = Deferred()
            waiting.append(shared)
            return await shared
        self._tokenRequests[key] = []
        try:
            token = await self._requestToken(*key)
        except BaseException:
            failure = Failure()
            for shared in self._tokenRequests.pop(key):
                shared.errback(failure)
            raise
        for shared in self._tokenRequests.pop(key):
            shared.callback(token)
        return token

    def _sendsCredentialsTo(self, realm: str) -> bool:
        scheme, host, _ = _origin(realm)
        return self._credentials is not None and (scheme == "https" or host == _origin(self.url)[1])

    async def _requestToken(self, realm: str, service: str, scope: str) -> str:
        query = urlencode([(k, v) for k, v in (("service", service), ("scope", scope)) if v])
        url = realm + ("&" if "?" in realm else "?") + query
        headers = {"Accept": "application/json"}
        if self._sendsCredentialsTo(realm):
            headers["Authorization"] = self._basic()
        elif self._credentials is not None:
            self.log.warn(
                "token realm {realm} is plain HTTP on another host than {upstream}: asking it anonymously",
                upstream=self.url,
                realm=realm,
            )
        response = await self._send("GET", url, headers)
        if response.code != 200:
            await self._discard(response)
            denied = " (credentials refused)" if response.code in (401, 403) else ""
            raise UpstreamUnavailable(f"token realm {realm} answered {response.code}{denied}")
        body = await self._stream(response, "").readAll(SMALL_BODY_LIMIT)
        try:
            token = parseTokenAnswer(body, time.time())
        except TokenAnswerInvalid as e:
            raise UpstreamUnavailable(f"token realm {realm}: {e}") from None
        self.tokens.put((realm, service, scope), token)
        return token.value
