"""
L{HTTPUpstream} against real registries on loopback: registryd without auth, with htpasswd
basic auth, with bearer tokens from the test token server, over TLS from a test CA, and Debian's
distribution; and against small servers written here for what real registries never do
(redirects to another host, bodies cut short, silence, lies about digests).
"""

from __future__ import annotations

import base64
import hashlib
import os
import ssl
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock, deferLater
from twisted.web.resource import Resource
from twisted.web.server import Site
from zope.interface.verify import verifyObject

from registryd.proxy.interfaces import IUpstream, IUpstreamBlob, IUpstreamManifest, UpstreamUnavailable
from registryd.proxy.tokens import Token
from registryd.proxy.upstream import MANIFEST_TYPES, HTTPUpstream
from registryd.registry.errors import BlobUnknown, ManifestUnknown
from registryd.registry.schema import OCI_MANIFEST
from registryd.testing.driversuite import readToEnd
from tests.support.cases import RegistryTestCase
from tests.support.certificates import Authority
from tests.support.layouts import MiB, digestOf
from tests.support.processes import freePort, registrydOn, writeConfig
from tests.support.pushes import PushedImage, Pusher
from tests.support.tokens import SERVICE, startTokenServer
from tests.test_e2e_auth_basic import PASSWORDS, writeHtpasswd
from tests.test_e2e_tls import TLSRegistryProcess

REPOSITORY = "mirror/app"
MISSING_DIGEST = "sha256:" + "0" * 64


def run(coroutine: Any) -> Deferred:
    return Deferred.fromCoroutine(coroutine)


class UpstreamCase(RegistryTestCase):
    """Makes upstream clients closed at the end of the test."""

    def upstream(self, url: str, *args: Any, **kwargs: Any) -> HTTPUpstream:
        client = HTTPUpstream(reactor, url, *args, **kwargs)
        self.addCleanup(client.close)
        return client

    async def assertUnavailable(self, deferred: Deferred, *fragments: str) -> UpstreamUnavailable:
        try:
            await deferred
        except UpstreamUnavailable as e:
            for fragment in fragments:
                self.assertIn(fragment, str(e))
            return e
        self.fail("UpstreamUnavailable not raised")

    async def assertRaisesAsync(self, error: type[Exception], deferred: Deferred) -> Exception:
        try:
            await deferred
        except error as e:
            return e
        self.fail(f"{error.__name__} not raised")

    async def checkImage(self, upstream: HTTPUpstream, image: PushedImage) -> None:
        """The image's manifest by tag (GET, HEAD) and by digest, and each layer, as pushed."""
        manifest = await upstream.manifest(REPOSITORY, "v1")
        verifyObject(IUpstreamManifest, manifest)
        self.assertEqual(
            (manifest.digest, manifest.mediaType, manifest.size, manifest.content),
            (image.digest, OCI_MANIFEST, len(image.manifest), image.manifest),
        )
        head = await upstream.manifest(REPOSITORY, "v1", "HEAD")
        self.assertEqual((head.digest, head.size, head.content), (image.digest, len(image.manifest), None))
        byDigest = await upstream.manifest(REPOSITORY, image.digest)
        self.assertEqual(byDigest.content, image.manifest)
        for digest, layer in image.layers.items():
            blob = await upstream.blob(REPOSITORY, digest)
            verifyObject(IUpstreamBlob, blob)
            self.assertEqual((blob.digest, blob.size), (digest, len(layer)))
            self.assertEqual(await readToEnd(blob), layer)

    async def checkUnknowns(self, upstream: HTTPUpstream) -> None:
        """404s come back as the core's typed errors."""
        await self.assertRaisesAsync(ManifestUnknown, upstream.manifest(REPOSITORY, "nope"))
        await self.assertRaisesAsync(ManifestUnknown, upstream.manifest(REPOSITORY, MISSING_DIGEST, "HEAD"))
        await self.assertRaisesAsync(ManifestUnknown, upstream.manifest("no/such/repo", "v1"))
        await self.assertRaisesAsync(BlobUnknown, upstream.blob(REPOSITORY, MISSING_DIGEST))


class AnonymousUpstreamTests(UpstreamCase):
    """registryd without auth as the upstream."""

    def setUp(self) -> None:
        self.registry = self.startRegistryd(self.workDirectory() / "root")
        self.image = Pusher(self.registry.url).image(REPOSITORY, "v1", [os.urandom(300 * 1024), b"small"])

    def test_provides_the_interface(self) -> None:
        verifyObject(IUpstream, self.upstream(self.registry.url))

    def test_manifests_and_blobs(self) -> Deferred:
        return run(self.checkImage(self.upstream(self.registry.url), self.image))

    def test_404s_are_typed(self) -> Deferred:
        return run(self.checkUnknowns(self.upstream(self.registry.url)))

    def test_blob_read_slowly_keeps_at_most_two_chunks(self) -> Deferred:
        """Back-pressure: while the reader waits, the socket is paused, so chunks do not pile up."""

        async def go() -> None:
            size = 48 * MiB
            layer = os.urandom(size)
            digest = Pusher(self.registry.url).blob(REPOSITORY, layer)
            del layer
            blob = await self.upstream(self.registry.url).blob(REPOSITORY, digest)
            hasher = hashlib.sha256()
            hasher.update(await blob.read())
            for _ in range(5):
                # The upstream gets every chance to push more than TCP's buffers hold.
                await deferLater(reactor, 0.1, lambda: None)
            self.assertLessEqual(blob.stream.mostQueued, 3)
            self.assertLess(blob.stream.received, size // 2)
            while chunk := await blob.read():
                hasher.update(chunk)
            self.assertEqual("sha256:" + hasher.hexdigest(), digest)
            self.assertLessEqual(blob.stream.mostQueued, 3)

        return run(go())

    def test_cancel_aborts_the_transfer(self) -> Deferred:
        async def go() -> None:
            digest = Pusher(self.registry.url).blob(REPOSITORY, os.urandom(16 * MiB))
            blob = await self.upstream(self.registry.url).blob(REPOSITORY, digest)
            await blob.read()
            blob.cancel()
            await self.assertUnavailable(blob.read(), "cancelled")

        return run(go())

    def test_stopped_upstream_is_unavailable(self) -> Deferred:
        self.registry.stop()
        return run(self.assertUnavailable(self.upstream(self.registry.url).manifest(REPOSITORY, "v1")))


class BasicAuthUpstreamTests(UpstreamCase):
    """registryd with htpasswd basic auth as the upstream."""

    def setUp(self) -> None:
        htpasswd = writeHtpasswd(self.workDirectory() / "htpasswd")
        self.registry = self.startRegistryd(
            self.workDirectory() / "root", auth={"htpasswd": {"realm": "upstream", "path": str(htpasswd)}}
        )
        basic = base64.b64encode(f"alice:{PASSWORDS['alice']}".encode()).decode()
        self.image = Pusher(self.registry.url, {"Authorization": f"Basic {basic}"}).image(
            REPOSITORY, "v1", [os.urandom(64 * 1024)]
        )

    def test_credentials_after_the_challenge_then_up_front(self) -> Deferred:
        async def go() -> None:
            upstream = self.upstream(self.registry.url, "alice", PASSWORDS["alice"])
            await self.checkImage(upstream, self.image)
            await self.checkUnknowns(upstream)
            self.assertEqual(upstream.challenge.scheme, "basic")
            # Only the very first request was turned away.
            ours = [line for line in self.registry.logTail(400).splitlines() if "registryd/" in line]
            self.assertEqual([line for line in ours if '" 401 ' in line], [ours[0]])

        return run(go())

    def test_wrong_or_missing_credentials_are_denied(self) -> Deferred:
        async def go() -> None:
            wrong = self.upstream(self.registry.url, "alice", "wrong")
            await self.assertUnavailable(wrong.manifest(REPOSITORY, "v1"), "denied")
            anonymous = self.upstream(self.registry.url)
            await self.assertUnavailable(anonymous.manifest(REPOSITORY, "v1"), "no")

        return run(go())


USERS = {
    "pusher": ("push-secret", {"*": ["pull", "push"]}),
    "puller": ("pull-secret", {REPOSITORY: ["pull"], "no/such/repo": ["pull"]}),
}


class TokenAuthUpstreamTests(UpstreamCase):
    """registryd with token auth (the test token server as realm) as the upstream."""

    def setUp(self) -> None:
        work = self.workDirectory()
        self.tokens = startTokenServer(self, USERS)
        self.realm = self.tokens.realm
        self.registry = self.startRegistryd(
            work / "root", auth=self.tokens.authSection(work / "token-signer.pem")
        )
        token = self.tokens.fetch("pusher", f"repository:{REPOSITORY}:pull,push")
        self.image = Pusher(self.registry.url, {"Authorization": f"Bearer {token}"}).image(
            REPOSITORY, "v1", [os.urandom(64 * 1024), os.urandom(1000)]
        )
        self.tokens.requests.clear()

    def tokenRequests(self) -> list[dict]:
        return [r for r in self.tokens.requests if f"repository:{REPOSITORY}:pull" in r["scopes"]]

    def test_one_token_serves_many_requests(self) -> Deferred:
        async def go() -> None:
            upstream = self.upstream(self.registry.url, "puller", "pull-secret", clock=Clock())
            await self.checkImage(upstream, self.image)
            await self.checkUnknowns(upstream)
            self.assertEqual(
                self.tokenRequests(),
                [{"user": "puller", "scopes": [f"repository:{REPOSITORY}:pull"], "service": SERVICE}],
            )
            self.assertEqual(upstream.challenge.scheme, "bearer")

        return run(go())

    def test_expired_token_is_replaced(self) -> Deferred:
        async def go() -> None:
            clock = Clock()
            upstream = self.upstream(self.registry.url, "puller", "pull-secret", clock=clock)
            await upstream.manifest(REPOSITORY, "v1")
            clock.advance(200)
            await upstream.manifest(REPOSITORY, "v1")
            self.assertEqual(len(self.tokenRequests()), 1)
            # The token server grants 300 s; it is not used in its last seconds.
            clock.advance(95)
            await upstream.manifest(REPOSITORY, "v1")
            self.assertEqual(len(self.tokenRequests()), 2)

        return run(go())

    def test_refused_cached_token_is_fetched_again_once(self) -> Deferred:
        async def go() -> None:
            upstream = self.upstream(self.registry.url, "puller", "pull-secret", clock=Clock())
            await upstream.manifest(REPOSITORY, "v1")
            upstream.tokens.put(
                (self.realm, SERVICE, f"repository:{REPOSITORY}:pull"), Token("not-a-token", 3600)
            )
            manifest = await upstream.manifest(REPOSITORY, "v1")
            self.assertEqual(manifest.digest, self.image.digest)
            self.assertEqual(len(self.tokenRequests()), 2)

        return run(go())

    def test_token_without_the_right_is_denied_without_looping(self) -> Deferred:
        async def go() -> None:
            upstream = self.upstream(self.registry.url, "puller", "pull-secret")
            await self.assertUnavailable(upstream.manifest("other/repo", "v1"), "denied")
            self.assertEqual(len([r for r in self.tokens.requests if r["user"] == "puller"]), 1)

        return run(go())

    def test_wrong_password_is_unavailable(self) -> Deferred:
        upstream = self.upstream(self.registry.url, "puller", "wrong")
        return run(self.assertUnavailable(upstream.manifest(REPOSITORY, "v1"), "credentials refused"))

    def test_anonymous_token_request(self) -> Deferred:
        async def go() -> None:
            upstream = self.upstream(self.registry.url)
            await self.assertUnavailable(upstream.manifest(REPOSITORY, "v1"))
            self.assertEqual([r["user"] for r in self.tokenRequests()], [None])

        return run(go())


class TLSUpstreamTests(UpstreamCase):
    """registryd over TLS with a certificate from a test CA."""

    def setUp(self) -> None:
        work = self.workDirectory()
        self.ca = Authority("upstream test CA")
        certificate, key = self.ca.server().write(work / "tls", "server")
        self.caFile = str(self.ca.writeCertificate(work / "tls" / "ca.crt"))
        port = freePort()
        config = writeConfig(
            work,
            work / "root",
            port,
            extra={
                "http": {
                    "addr": f"127.0.0.1:{port}",
                    "tls": {"certificate": str(certificate), "key": str(key)},
                }
            },
        )
        context = ssl.create_default_context(cafile=self.caFile)
        self.registry = registrydOn(work, config, port, TLSRegistryProcess, context=context)
        self.addCleanup(self.registry.stop)
        self.registry.start()
        self.image = Pusher(self.registry.url, context=context).image(
            REPOSITORY, "v1", [os.urandom(100 * 1024)]
        )

    def test_verified_with_the_ca(self) -> Deferred:
        async def go() -> None:
            upstream = self.upstream(self.registry.url, caCertificates=self.caFile)
            await self.checkImage(upstream, self.image)
            await self.checkUnknowns(upstream)
            other = str(Authority("another CA").writeCertificate(self.workDirectory() / "other.crt"))
            several = self.upstream(self.registry.url, caCertificates=[other, self.caFile])
            self.assertEqual((await several.manifest(REPOSITORY, "v1")).digest, self.image.digest)
            alone = self.upstream(self.registry.url, caCertificates=[other])
            await self.assertUnavailable(alone.manifest(REPOSITORY, "v1"), "certificate")

        return run(go())

    def test_unknown_ca_is_unavailable(self) -> Deferred:
        upstream = self.upstream(self.registry.url)
        return run(self.assertUnavailable(upstream.manifest(REPOSITORY, "v1"), "certificate"))

    def test_bad_ca_file_is_refused_at_once(self) -> None:
        bad = self.workDirectory() / "bad.pem"
        bad.write_text("not a certificate")
        self.assertRaises(ValueError, HTTPUpstream, reactor, self.registry.url, caCertificates=str(bad))


class DistributionUpstreamTests(UpstreamCase):
    """Debian's distribution (docker-registry) as the upstream."""

    def test_manifests_blobs_and_404s(self) -> Deferred:
        registry = self.startDistribution(self.workDirectory() / "root")
        image = Pusher(registry.url).image(REPOSITORY, "v1", [os.urandom(200 * 1024)])

        async def go() -> None:
            upstream = self.upstream(registry.url)
            await self.checkImage(upstream, image)
            await self.checkUnknowns(upstream)

        return run(go())


# Upstreams written here, for what real registries do not do on demand.


class Recorder(Resource):
    """Answers by path from C{routes}, recording (interface, method, path, headers) of each request."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.routes: dict[str, Any] = {}
        self.seen: list[tuple[str, str, str, dict[str, str]]] = []

    def render(self, request: Any) -> bytes:
        headers = {k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()}
        path = request.path.decode()
        self.seen.append((request.getHost().host, request.method.decode(), path, headers))
        request.setHeader(b"connection", b"close")
        route = self.routes.get(path)
        if route is None:
            request.setResponseCode(404)
            return b'{"errors": [{"code": "NAME_UNKNOWN"}]}'
        return route(request)


class Hold(Protocol):
    """Reads a request, answers with C{factory.answer} (if any), then stays silent or hangs up."""

    def connectionMade(self) -> None:
        self.factory.connections.append(self)
        self.buffer = b""

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        if b"\r\n\r\n" in self.buffer and self.factory.answer is not None:
            self.transport.write(self.factory.answer)
            if self.factory.hangUp:
                self.transport.loseConnection()


class FakeUpstreamTests(UpstreamCase):
    def listen(self, resource: Any, interface: str = "127.0.0.1") -> str:
        port = reactor.listenTCP(0, Site(resource), interface=interface)
        self.addCleanup(port.stopListening)
        return f"http://{interface}:{port.getHost().port}"

    def listenRaw(self, answer: bytes | None, hangUp: bool) -> str:
        factory = Factory.forProtocol(Hold)
        factory.answer, factory.hangUp, factory.connections = answer, hangUp, []
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")

        def stop() -> Deferred:
            for connection in factory.connections:
                connection.transport.abortConnection()
            return port.stopListening()

        self.addCleanup(stop)
        return f"http://127.0.0.1:{port.getHost().port}"

    def test_redirect_to_another_host_drops_authorization(self) -> Deferred:
        layer = os.urandom(200 * 1024)
        digest = digestOf(layer)
        storage = Recorder()
        storage.routes["/bucket/blob"] = lambda request: layer
        storageURL = self.listen(storage, "127.0.0.2")
        registry = Recorder()

        def blob(request: Any) -> bytes:
            if request.getHeader("authorization") is None:
                request.setResponseCode(401)
                request.setHeader("www-authenticate", 'Basic realm="fake"')
                return b""
            request.setResponseCode(307)
            request.setHeader("location", f"{storageURL}/bucket/blob?X-Amz-Signature=abc")
            return b""

        registry.routes[f"/v2/{REPOSITORY}/blobs/{digest}"] = blob

        async def go() -> None:
            upstream = self.upstream(self.listen(registry), "alice", "secret")
            answer = await upstream.blob(REPOSITORY, digest)
            self.assertEqual(await readToEnd(answer), layer)
            self.assertIn("authorization", registry.seen[-1][3])
            ((host, method, path, headers),) = storage.seen
            self.assertEqual((host, method, path), ("127.0.0.2", "GET", "/bucket/blob"))
            self.assertNotIn("authorization", headers)

        return run(go())

    def test_body_cut_short_is_unavailable(self) -> Deferred:
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\nContent-Type: application/octet-stream\r\n\r\n"
        url = self.listenRaw(head + b"x" * 100_000, hangUp=True)

        async def go() -> None:
            blob = await self.upstream(url).blob(REPOSITORY, MISSING_DIGEST)
            self.assertEqual(blob.size, 1_000_000)
            await self.assertUnavailable(readToEnd(blob), "broke after")

        return run(go())

    def test_silent_upstream_times_out(self) -> Deferred:
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n"

        async def go() -> None:
            silent = self.upstream(self.listenRaw(None, hangUp=False), readTimeout=0.5)
            await self.assertUnavailable(silent.manifest(REPOSITORY, "v1"), "no answer within 0.5 s")
            stalled = self.upstream(self.listenRaw(head + b"x" * 1000, hangUp=False), readTimeout=0.5)
            blob = await stalled.blob(REPOSITORY, MISSING_DIGEST)
            await self.assertUnavailable(readToEnd(blob), "sent nothing for 0.5 s")

        return run(go())

    def test_manifest_not_matching_its_digest_is_unavailable(self) -> Deferred:
        registry = Recorder()
        registry.routes[f"/v2/{REPOSITORY}/manifests/{MISSING_DIGEST}"] = lambda request: (
            b'{"schemaVersion": 2}'
        )
        upstream = self.upstream(self.listen(registry))
        return run(
            self.assertUnavailable(upstream.manifest(REPOSITORY, MISSING_DIGEST), "not " + MISSING_DIGEST)
        )

    def test_accept_lists_every_stored_type_unless_given(self) -> Deferred:
        async def go() -> None:
            registry = Recorder()
            upstream = self.upstream(self.listen(registry))
            await self.assertRaisesAsync(ManifestUnknown, upstream.manifest(REPOSITORY, "v1"))
            await self.assertRaisesAsync(
                ManifestUnknown, upstream.manifest(REPOSITORY, "v1", accept=["a/b", "c/d"])
            )
            sent = [headers["accept"] for _, _, _, headers in registry.seen]
            self.assertEqual(sorted(sent[0].split(", ")), sorted(MANIFEST_TYPES))
            self.assertEqual(sent[1:], ["a/b, c/d"])

        return run(go())

    def test_head_without_digest_becomes_get(self) -> Deferred:
        content = b'{"schemaVersion": 2, "mediaType": "%s"}' % OCI_MANIFEST.encode()
        registry = Recorder()

        def manifest(request: Any) -> bytes:
            request.setHeader("content-type", OCI_MANIFEST)
            return content

        registry.routes[f"/v2/{REPOSITORY}/manifests/v1"] = manifest

        async def go() -> None:
            answer = await self.upstream(self.listen(registry)).manifest(REPOSITORY, "v1", "HEAD")
            self.assertEqual([seen[1] for seen in registry.seen], ["HEAD", "GET"])
            self.assertEqual(
                (answer.digest, answer.size, answer.mediaType),
                (digestOf(content), len(content), OCI_MANIFEST),
            )

        return run(go())

    def test_server_errors_and_throttling_are_unavailable(self) -> Deferred:
        registry = Recorder()

        def status(code: int) -> Any:
            def answer(request: Any) -> bytes:
                request.setResponseCode(code)
                return b'{"errors": [{"code": "TOOMANYREQUESTS"}]}' if code == 429 else b"oops"

            return answer

        registry.routes["/v2/a/manifests/v1"] = status(500)
        registry.routes["/v2/b/manifests/v1"] = status(429)
        registry.routes["/v2/c/manifests/v1"] = status(503)

        async def go() -> None:
            upstream = self.upstream(self.listen(registry))
            await self.assertUnavailable(upstream.manifest("a", "v1"), "500")
            await self.assertUnavailable(upstream.manifest("b", "v1"), "429 TOOMANYREQUESTS")
            await self.assertUnavailable(upstream.manifest("c", "v1"), "503")

        return run(go())

    def test_oversized_manifest_is_unavailable(self) -> Deferred:
        registry = Recorder()
        registry.routes[f"/v2/{REPOSITORY}/manifests/v1"] = lambda request: b" " * (4 * MiB + 1)
        upstream = self.upstream(self.listen(registry))
        return run(self.assertUnavailable(upstream.manifest(REPOSITORY, "v1"), "limit"))

    def test_plain_http_realm_on_another_host_gets_no_credentials(self) -> None:
        upstream = self.upstream("http://127.0.0.1:5000", "alice", "secret")
        self.assertTrue(upstream._sendsCredentialsTo("http://127.0.0.1:9999/token"))
        self.assertTrue(upstream._sendsCredentialsTo("https://auth.example/token"))
        self.assertFalse(upstream._sendsCredentialsTo("http://auth.example/token"))
