"""The gcs driver: the shared driver suite and more against fake-gcs-server on loopback."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any
from urllib.parse import parse_qs

import treq
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from twisted.internet import reactor
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.server import Site

from registryd.config.errors import ConfigError
from registryd.storage import gcs
from registryd.storage.gcs import GCSDriver, createDriver
from registryd.storage.interfaces import PathNotFound
from registryd.testing.driversuite import MiB, StorageDriverTestsMixin
from tests.support.gcs import sharedFakeGCSServer


async def createBucket(testCase: TestCase) -> str:
    """A new bucket on the shared fake-gcs-server."""
    server = sharedFakeGCSServer()
    bucket = f"test-{uuid.uuid4().hex[:20]}"
    pool = HTTPConnectionPool(reactor, persistent=False)
    response = await treq.post(
        f"{server.endpoint}/storage/v1/b",
        json={"name": bucket},
        pool=pool,
    )
    await treq.content(response)
    testCase.assertEqual(response.code, 200)
    return bucket


async def fakeGCSDriver(testCase: TestCase, **extra: object) -> GCSDriver:
    """A driver on a fresh bucket of the shared fake-gcs-server, stopped when the test ends."""
    bucket = await createBucket(testCase)
    parameters = {"bucket": bucket, "endpoint": sharedFakeGCSServer().endpoint, "chunksize": "256K", **extra}
    driver = createDriver(reactor, parameters)
    testCase.addCleanup(driver.stop)
    return driver


class GCSDriverTests(StorageDriverTestsMixin, TestCase):
    """The shared suite against fake-gcs-server (small chunks, so uploads span many)."""

    async def makeDriver(self) -> GCSDriver:
        return await fakeGCSDriver(self)


class GCSDriverRootDirectoryTests(StorageDriverTestsMixin, TestCase):
    """The shared suite again, below a root directory, with the default chunk size."""

    async def makeDriver(self) -> GCSDriver:
        return await fakeGCSDriver(self, rootdirectory="/registry/root/", chunksize=5 * MiB)


class GCSDriverBehaviourTests(TestCase):
    """What only resumable sessions, sidecars and the emulator itself can show."""

    async def test_resume_across_writer_instances_keeps_session_and_tail(self) -> None:
        """close() leaves the session URI and the unsent tail in a sidecar; a new writer goes on."""
        driver = await fakeGCSDriver(self)
        first = await driver.writer("/u/data")
        await first.write(b"a" * (256 * 1024 + 10))
        await first.close()
        session, sent, tail = gcs.streams.decodeSidecar(await driver._getSidecar("/u/data"))
        self.assertTrue(session.startswith(sharedFakeGCSServer().endpoint))
        self.assertEqual((sent, tail), (256 * 1024, b"a" * 10))
        await self.assertFailure(driver.list("/u"), PathNotFound)  # the sidecar is not content
        second = await driver.writer("/u/data", append=True)
        self.assertEqual(second.size, 256 * 1024 + 10)
        await second.write(b"b" * 5)
        await second.commit()
        self.assertEqual(await driver.getContent("/u/data"), b"a" * (256 * 1024 + 10) + b"b" * 5)
        await self.assertFailure(driver.writer("/u/data", append=True), PathNotFound)
        self.assertEqual(await driver.list("/u"), ["/u/data"])

    async def test_fresh_writer_keeps_committed_content_until_commit(self) -> None:
        driver = await fakeGCSDriver(self)
        await driver.putContent("/f", b"committed")
        writer = await driver.writer("/f")
        await writer.write(b"staged" * 100000)
        await writer.close()
        fresh = await driver.writer("/f")
        self.assertEqual(fresh.size, 0)
        self.assertEqual(await driver.getContent("/f"), b"committed")
        await fresh.cancel()
        self.assertEqual(await driver.getContent("/f"), b"committed")

    async def test_move_large_object_uses_rewrite(self) -> None:
        driver = await fakeGCSDriver(self)
        data = bytes(range(256)) * (3 * 4096)
        await driver.putContent("/big/source", data)
        await driver.move("/big/source", "/big/dest")
        self.assertEqual(await driver.getContent("/big/dest"), data)
        self.assertEqual(await driver.list("/big"), ["/big/dest"])

    async def test_list_follows_page_tokens(self) -> None:
        driver = await fakeGCSDriver(self)
        names = [f"/many/f{i:04d}" for i in range(1200)]
        for start in range(0, len(names), 100):
            await gatherAll([driver.putContent(name, b"x") for name in names[start : start + 100]])
        self.assertEqual(await driver.list("/many"), names)


async def gatherAll(ds: list) -> None:
    """Wait for every Deferred in ds."""
    for d in ds:
        await d


def makeServiceAccount(tokenURI: str) -> tuple[dict[str, Any], rsa.RSAPrivateKey]:
    """A service account key file's content with a fresh RSA key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "test",
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": "registry@test.iam.gserviceaccount.com",
        "token_uri": tokenURI,
    }
    return info, key


class TokenEndpoint(Resource):
    """An OAuth2 token endpoint checking the JWT's RS256 signature with the account's public key."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.publicKey: Any = None
        self.claims: list[dict] = []

    def render_POST(self, request: Any) -> bytes:
        form = parse_qs(request.content.read().decode())
        assertion = form["assertion"][0]
        signing, _, signature = assertion.rpartition(".")
        padded = signature + "=" * (-len(signature) % 4)
        self.publicKey.verify(
            base64.urlsafe_b64decode(padded), signing.encode(), padding.PKCS1v15(), hashes.SHA256()
        )
        payload = signing.split(".")[1]
        self.claims.append(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
        request.setHeader(b"content-type", b"application/json")
        return json.dumps({"access_token": f"token-{len(self.claims)}", "expires_in": 3600}).encode()


class GCSServiceAccountTests(TestCase):
    """Service account credentials: the JWT exchange and V4 signed URLs."""

    async def setUp(self) -> None:
        self.endpoint = TokenEndpoint()
        port = reactor.listenTCP(0, Site(self.endpoint), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        tokenURI = f"http://127.0.0.1:{port.getHost().port}/token"
        self.info, key = makeServiceAccount(tokenURI)
        self.endpoint.publicKey = key.public_key()
        self.driver = await fakeGCSDriver(self, credentials=self.info)

    async def test_token_fetched_once_with_signed_jwt(self) -> None:
        await self.driver.putContent("/a", b"1")
        await self.driver.putContent("/b", b"2")
        self.assertEqual(await self.driver.list("/"), ["/a", "/b"])
        self.assertEqual(len(self.endpoint.claims), 1)
        claims = self.endpoint.claims[0]
        self.assertEqual(claims["iss"], self.info["client_email"])
        self.assertEqual(claims["aud"], self.info["token_uri"])
        self.assertIn("devstorage", claims["scope"])

    async def test_redirect_url_is_a_v4_signed_url(self) -> None:
        await self.driver.putContent("/signed/blob", b"signed content")
        url = await self.driver.redirectURL("GET", "/signed/blob")
        for field in ("X-Goog-Algorithm=GOOG4-RSA-SHA256", "X-Goog-Credential=", "X-Goog-Signature="):
            self.assertIn(field, url)
        pool = HTTPConnectionPool(reactor, persistent=False)
        response = await treq.get(url, pool=pool)
        self.assertEqual(response.code, 200)
        self.assertEqual(await treq.content(response), b"signed content")
        self.assertIsNone(await self.driver.redirectURL("PUT", "/signed/blob"))

    async def test_no_redirect_without_a_key(self) -> None:
        driver = await fakeGCSDriver(self)
        await driver.putContent("/x", b"x")
        self.assertIsNone(await driver.redirectURL("GET", "/x"))


class GCSParameterTests(TestCase):
    """Bad parameters stop start-up with a ConfigError naming storage.gcs.<param>."""

    good = {"bucket": "registry", "endpoint": "http://127.0.0.1:1"}

    def assertRefused(self, parameters: dict, keyPath: tuple[str, ...]) -> None:
        with self.assertRaises(ConfigError) as caught:
            createDriver(reactor, parameters)
        self.assertEqual(caught.exception.keyPath, keyPath)

    def test_good_parameters(self) -> None:
        driver = createDriver(reactor, dict(self.good, rootdirectory="/a/b", chunksize="512K"))
        self.assertEqual(driver._objectName("/x/y"), "a/b/x/y")
        self.assertEqual(driver.chunkSize, 512 * 1024)

    def test_keyfile(self) -> None:
        info, _ = makeServiceAccount("https://oauth2.googleapis.com/token")
        keyfile = self.mktemp()
        with open(keyfile, "w") as f:
            json.dump(info, f)
        driver = createDriver(reactor, {"bucket": "registry", "keyfile": keyfile})
        self.assertEqual(driver.account.clientEmail, info["client_email"])
        self.assertEqual(driver.endpoint, "https://storage.googleapis.com")

    def test_required(self) -> None:
        self.assertRefused({"endpoint": "http://127.0.0.1:1"}, ("storage", "gcs", "bucket"))

    def test_bad_values(self) -> None:
        cases = {
            "bucket": "Bad_Bucket!",
            "keyfile": "/no/such/key.json",
            "credentials": {"type": "service_account", "client_email": "x@y", "private_key": "nope"},
            "rootdirectory": "/a/../b",
            "chunksize": 1000,
            "endpoint": "ftp://example.com",
        }
        for key, value in cases.items():
            self.assertRefused(dict(self.good, **{key: value}), ("storage", "gcs", key))
        self.assertRefused(dict(self.good, chunksize=300 * 1024), ("storage", "gcs", "chunksize"))
        self.assertRefused(dict(self.good, credentials="x"), ("storage", "gcs", "credentials"))

    def test_unknown_parameter(self) -> None:
        self.assertRefused(dict(self.good, container="x"), ("storage", "gcs", "container"))

    def test_module_name(self) -> None:
        self.assertEqual(gcs.NAME, "gcs")
