"""The swift driver: the shared driver suite and more against a real Swift all-in-one on loopback."""

from __future__ import annotations

import uuid

import treq
from twisted.internet import reactor
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from registryd.config.errors import ConfigError
from registryd.storage.interfaces import PathNotFound
from registryd.storage.swift import SwiftDriver, createDriver
from registryd.storage.swift.auth import (
    AuthError,
    Credentials,
    tokenExpiry,
    v2Body,
    v2Endpoint,
    v3Body,
    v3Endpoint,
)
from registryd.testing.driversuite import MiB, StorageDriverTestsMixin
from tests.support.swift import PASSWORD, USERNAME, sharedSwift


def swiftDriver(testCase: TestCase, **extra: object) -> SwiftDriver:
    """A driver on a fresh container of the shared Swift, stopped when the test ends."""
    swift = sharedSwift()
    parameters = {
        "authurl": swift.authURL,
        "username": USERNAME,
        "password": PASSWORD,
        "container": f"test-{uuid.uuid4().hex[:20]}",
        **extra,
    }
    driver = createDriver(reactor, parameters)
    testCase.addCleanup(driver.stop)
    return driver


class SwiftDriverTests(StorageDriverTestsMixin, TestCase):
    """The shared suite against Swift, with small segments so large objects are several segments."""

    def makeDriver(self) -> SwiftDriver:
        return swiftDriver(self, chunksize="1M")


class SwiftDriverPrefixTests(StorageDriverTestsMixin, TestCase):
    """The shared suite again, below a prefix, with temp-URL redirects and two-entry listing pages."""

    def makeDriver(self) -> SwiftDriver:
        driver = swiftDriver(self, prefix="/registry/root/", secretkey="s3cret")
        driver.pageSize = 2
        return driver


class SwiftDriverBehaviourTests(TestCase):
    """What only segments, manifests and temp URLs can show."""

    def setUp(self) -> None:
        self.driver = swiftDriver(self, chunksize="1M", secretkey="tempurl-key")

    async def segmentSizes(self, session: str) -> list[int]:
        return [e["bytes"] for e in await self.driver.listNames(self.driver.segmentPrefix(session))]

    async def test_segmented_write_resumed_across_writers(self) -> None:
        """Each writer adds segments; those uploaded before a close are kept, not sent again."""
        first = await self.driver.writer("/u/data")
        await first.write(b"a" * (MiB + 10))
        await first.close()
        session = first.session
        self.assertEqual(await self.segmentSizes(session), [MiB, 10])
        second = await self.driver.writer("/u/data", append=True)
        self.assertEqual((second.session, second.size), (session, MiB + 10))
        await second.write(b"b" * 5)
        await second.close()
        self.assertEqual(await self.segmentSizes(session), [MiB, 10, 5])
        third = await self.driver.writer("/u/data", append=True)
        await third.commit()
        self.assertEqual(await self.driver.getContent("/u/data"), b"a" * (MiB + 10) + b"b" * 5)
        self.assertEqual((await self.driver.stat("/u/data")).size, MiB + 15)
        await self.assertFailure(self.driver.writer("/u/data", append=True), PathNotFound)
        # Moving a manifest keeps its segments; deleting the moved content removes them.
        await self.driver.move("/u/data", "/blobs/data")
        self.assertEqual(await self.driver.getContent("/blobs/data"), b"a" * (MiB + 10) + b"b" * 5)
        await self.assertFailure(self.driver.stat("/u"), PathNotFound)
        self.assertEqual(await self.segmentSizes(session), [MiB, 10, 5])
        await self.driver.delete("/blobs")
        self.assertEqual(await self.segmentSizes(session), [])

    async def test_cancel_deletes_segments(self) -> None:
        writer = await self.driver.writer("/c/data")
        await writer.write(b"x" * (2 * MiB))
        self.assertEqual(await self.segmentSizes(writer.session), [MiB, MiB])
        await writer.cancel()
        self.assertEqual(await self.segmentSizes(writer.session), [])

    async def test_redirect_url_is_a_working_temp_url(self) -> None:
        """A temp URL serves the content, segmented or not, without a token."""
        await self.driver.putContent("/t/small", b"signed content")
        writer = await self.driver.writer("/t/large")
        await writer.write(b"L" * (MiB + 3))
        await writer.commit()
        pool = HTTPConnectionPool(reactor, persistent=False)
        for path, expected in (("/t/small", b"signed content"), ("/t/large", b"L" * (MiB + 3))):
            url = await self.driver.redirectURL("GET", path)
            self.assertIn("temp_url_sig=", url)
            response = await treq.get(url, pool=pool)
            self.assertEqual(response.code, 200)
            self.assertEqual(await treq.content(response), expected)
        self.assertIsNone(await self.driver.redirectURL("PUT", "/t/small"))
        tampered = (await self.driver.redirectURL("GET", "/t/small")).replace("small", "large")
        response = await treq.get(tampered, pool=pool)
        await treq.content(response)
        self.assertEqual(response.code, 401)

    async def test_no_redirect_without_secret_key(self) -> None:
        driver = swiftDriver(self)
        await driver.putContent("/x", b"x")
        self.assertIsNone(await driver.redirectURL("GET", "/x"))

    async def test_wrong_password_is_refused(self) -> None:
        driver = swiftDriver(self, password="wrong")
        with self.assertRaises(Exception) as caught:
            await driver.putContent("/x", b"x")
        self.assertEqual(caught.exception.driverName, "swift")


class SwiftParameterTests(TestCase):
    """Bad parameters stop start-up with a ConfigError naming storage.swift.<param>."""

    good = {
        "authurl": "https://keystone.example.com/v3",
        "username": "u",
        "password": "p",
        "container": "registry",
    }

    def assertRefused(self, parameters: dict, keyPath: tuple[str, ...]) -> None:
        with self.assertRaises(ConfigError) as caught:
            createDriver(reactor, parameters)
        self.assertEqual(caught.exception.keyPath, keyPath)

    def test_good_parameters(self) -> None:
        driver = createDriver(
            reactor,
            dict(
                self.good,
                tenant="t",
                domain="d",
                region="r1",
                prefix="/a/b/",
                chunksize=8 << 20,
                secretkey="k",
                insecureskipverify=True,
                endpointtype="internal",
                tempurlmethods=["GET", "PUT"],
            ),
        )
        self.assertEqual(driver.credentials.version, 3)
        self.assertEqual(driver.credentials.endpointType, "internal")
        self.assertEqual(driver._file("/x/y"), "a/b/files/x/y")
        self.assertEqual(driver.chunkSize, 8 << 20)

    def test_auth_version_detected(self) -> None:
        for url, version in (
            ("http://h/auth/v1.0", 1),
            ("http://h/v2.0", 2),
            ("http://h/v3", 3),
            ("http://h/identity", 1),
        ):
            driver = createDriver(reactor, dict(self.good, authurl=url))
            self.assertEqual(driver.credentials.version, version, url)
        self.assertEqual(createDriver(reactor, dict(self.good, authversion="2")).credentials.version, 2)

    def test_required(self) -> None:
        for key in ("authurl", "username", "password", "container"):
            parameters = {k: v for k, v in self.good.items() if k != key}
            self.assertRefused(parameters, ("storage", "swift", key))

    def test_bad_values(self) -> None:
        cases = {
            "authurl": "ftp://example.com",
            "container": "a/b",
            "prefix": "/a/../b",
            "chunksize": 1024,
            "authversion": 4,
            "insecureskipverify": "maybe",
            "endpointtype": "private",
            "tempurlmethods": ["FETCH"],
            "tempurlcontainerkey": "yes",
            "username": 5,
        }
        for key, value in cases.items():
            self.assertRefused(dict(self.good, **{key: value}), ("storage", "swift", key))

    def test_exclusive_pairs(self) -> None:
        self.assertRefused(dict(self.good, tenant="a", tenantid="b"), ("storage", "swift", "tenantid"))
        self.assertRefused(dict(self.good, domain="a", domainid="b"), ("storage", "swift", "domainid"))

    def test_unknown_parameter(self) -> None:
        self.assertRefused(dict(self.good, bucket="x"), ("storage", "swift", "bucket"))


class KeystoneTests(TestCase):
    """The Keystone v2 and v3 request bodies and catalog lookups."""

    def test_v2(self) -> None:
        c = Credentials("http://h/v2.0", 2, "u", "p", tenant="t", region="r2", endpointType="internal")
        self.assertEqual(
            v2Body(c),
            {"auth": {"passwordCredentials": {"username": "u", "password": "p"}, "tenantName": "t"}},
        )
        answer = {
            "access": {
                "token": {"id": "tok", "tenant": {"id": "tid"}},
                "serviceCatalog": [
                    {"type": "identity", "endpoints": [{"region": "r2", "internalURL": "http://id"}]},
                    {
                        "type": "object-store",
                        "endpoints": [
                            {"region": "r1", "internalURL": "http://one"},
                            {"region": "r2", "internalURL": "http://two", "publicURL": "http://pub"},
                        ],
                    },
                ],
            }
        }
        self.assertEqual(v2Endpoint(c, answer), ("tok", "http://two", "tid"))

    def test_v3(self) -> None:
        c = Credentials("http://h/v3", 3, "u", "p", tenantID="pid", domainID="did")
        body = v3Body(c)["auth"]
        self.assertEqual(body["identity"]["password"]["user"]["domain"], {"id": "did"})
        self.assertEqual(body["scope"], {"project": {"id": "pid"}})
        trust = v3Body(Credentials("http://h/v3", 3, "u", "p", trustID="tr"))["auth"]["scope"]
        self.assertEqual(trust, {"OS-TRUST:trust": {"id": "tr"}})
        answer = {
            "token": {
                "project": {"id": "pid"},
                "catalog": [
                    {
                        "type": "object-store",
                        "endpoints": [
                            {"interface": "admin", "url": "http://admin"},
                            {"interface": "public", "url": "http://public", "region": "r"},
                        ],
                    }
                ],
            }
        }
        self.assertEqual(v3Endpoint(c, "tok", answer), ("tok", "http://public", "pid"))

    def test_token_expiry(self) -> None:
        """v3's token.expires_at and v2's access.token.expires, as POSIX time; None when absent or odd."""
        self.assertEqual(tokenExpiry({"token": {"expires_at": "2030-01-01T00:00:00.000000Z"}}), 1893456000.0)
        self.assertEqual(
            tokenExpiry({"access": {"token": {"expires": "2030-01-01T00:00:00Z"}}}), 1893456000.0
        )
        self.assertIsNone(tokenExpiry({"token": {}}))
        self.assertIsNone(tokenExpiry({"token": {"expires_at": "soon"}}))

    def test_v3_unscoped_token(self) -> None:
        """A token without project or catalog is refused with advice, not as a missing endpoint."""
        c = Credentials("http://h/v3", 3, "u", "p")
        with self.assertRaises(AuthError) as caught:
            v3Endpoint(c, "tok", {"token": {"user": {"id": "u"}}})
        self.assertIn("scoped to no project", str(caught.exception))
