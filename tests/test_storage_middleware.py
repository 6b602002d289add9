"""C{middleware.storage}: the redirect and cloudfront driver wrappers, their options, and the API's 307s."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import parse_qs

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from registryd.config import parseDocument
from registryd.config.errors import ConfigError
from registryd.config.middleware import MiddlewareEntry, parseMiddleware
from registryd.storage.inmemory import InMemoryDriver
from registryd.storage.interfaces import InvalidPath, IStorageDriver
from registryd.storage.middleware import applyStorageMiddleware
from registryd.storage.middleware.cloudfront import CloudFrontMiddleware, cannedPolicy
from registryd.storage.middleware.redirect import RedirectMiddleware
from registryd.testing.driversuite import StorageDriverTestsMixin
from tests.test_api_base import APIClient, makeAPI

BLOB = "/docker/registry/v2/blobs/sha256/ab/ab12/data"
KEY_PATH = ("middleware", "storage", "0")


def storageMiddleware(driver: IStorageDriver, *entries: dict, clock: object = None) -> IStorageDriver:
    """C{driver} wrapped as a C{middleware.storage} list of C{entries} configures it."""
    parsed = parseMiddleware({"storage": list(entries)})
    return applyStorageMiddleware(driver, parsed.storage, clock or Clock())


def writeKey(directory: Path, key: object) -> str:
    """Write C{key} as an unencrypted PEM file (traditional OpenSSL format, as AWS hands it out)."""
    path = directory / "cloudfront.pem"
    path.write_bytes(
        key.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return str(path)


def fromCloudFrontBase64(text: str) -> bytes:
    return base64.b64decode(text.translate(str.maketrans("-_~", "+=/")))


class RedirectMiddlewareSuiteTests(StorageDriverTestsMixin, TestCase):
    """Everything but redirects passes through: the shared suite over the wrapped in-memory driver."""

    def makeDriver(self) -> IStorageDriver:
        return storageMiddleware(InMemoryDriver(), {"name": "redirect", "options": {"baseurl": "http://cdn"}})


class RedirectMiddlewareTests(TestCase):
    def wrap(self, baseURL: object) -> IStorageDriver:
        return storageMiddleware(InMemoryDriver(), {"name": "redirect", "options": {"baseurl": baseURL}})

    async def test_url_is_baseurl_scheme_and_host_with_the_storage_path(self) -> None:
        driver = self.wrap("https://layers.example:5443")
        self.assertIsInstance(driver, RedirectMiddleware)
        verifyObject(IStorageDriver, driver)
        self.assertEqual(await driver.redirectURL("GET", BLOB), "https://layers.example:5443" + BLOB)

    async def test_baseurl_path_prefixes_the_storage_path(self) -> None:
        for base in ("http://cdn.example/mirror", "http://cdn.example/mirror/"):
            driver = self.wrap(base)
            self.assertEqual(await driver.redirectURL("HEAD", BLOB), "http://cdn.example/mirror" + BLOB)

    async def test_query_of_baseurl_is_dropped(self) -> None:
        """As distribution: only scheme, host and path of baseurl are kept."""
        driver = self.wrap("http://cdn.example/x?token=1")
        self.assertEqual(await driver.redirectURL("GET", BLOB), "http://cdn.example/x" + BLOB)

    async def test_invalid_path_fails(self) -> None:
        await self.assertFailure(self.wrap("http://cdn").redirectURL("GET", "/a/../b"), InvalidPath)

    def test_other_operations_reach_the_driver(self) -> None:
        inner = InMemoryDriver()
        driver = storageMiddleware(inner, {"name": "redirect", "options": {"baseurl": "http://cdn"}})
        self.assertEqual(driver.name, inner.name)
        self.assertIs(driver.driver, inner)

    def test_bad_baseurl_names_the_key(self) -> None:
        for options in ({}, {"baseurl": "cdn.example"}, {"baseurl": "http://"}, {"baseurl": 5}):
            with self.assertRaises(ConfigError) as caught:
                storageMiddleware(InMemoryDriver(), {"name": "redirect", "options": options})
            self.assertEqual(caught.exception.keyPath, (*KEY_PATH, "options", "baseurl"))

    def test_unknown_option_is_refused(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            storageMiddleware(
                InMemoryDriver(), {"name": "redirect", "options": {"baseurl": "http://a", "host": "b"}}
            )
        self.assertEqual(caught.exception.keyPath, (*KEY_PATH, "options", "host"))


class CloudFrontMiddlewareTests(TestCase):
    def setUp(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.directory = Path(self.mktemp())
        self.directory.mkdir()
        self.keyFile = writeKey(self.directory, self.key)
        self.clock = Clock()
        self.clock.advance(1_700_000_000)

    def wrap(self, driver: IStorageDriver | None = None, **options: object) -> IStorageDriver:
        options = {
            "baseurl": "https://d111.cloudfront.net",
            "privatekey": self.keyFile,
            "keypairid": "K2JCJMDEHXQW5F",
            **options,
        }
        return storageMiddleware(
            driver or InMemoryDriver(), {"name": "cloudfront", "options": options}, clock=self.clock
        )

    def assertSigned(self, url: str, resource: str, expires: int) -> None:
        """url is resource plus a canned-policy signature the key pair's public key verifies."""
        base, _, query = url.partition("?")
        self.assertEqual(base, resource)
        fields = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        self.assertEqual(set(fields), {"Expires", "Signature", "Key-Pair-Id"})
        self.assertEqual(fields["Key-Pair-Id"], "K2JCJMDEHXQW5F")
        self.assertEqual(int(fields["Expires"]), expires)
        self.assertNotRegex(fields["Signature"], r"[+/=]")
        policy = cannedPolicy(resource, expires)
        self.assertEqual(
            json.loads(policy),
            {
                "Statement": [
                    {"Resource": resource, "Condition": {"DateLessThan": {"AWS:EpochTime": expires}}}
                ]
            },
        )
        self.key.public_key().verify(
            fromCloudFrontBase64(fields["Signature"]), policy, padding.PKCS1v15(), hashes.SHA1()
        )
        with self.assertRaises(InvalidSignature):
            self.key.public_key().verify(
                fromCloudFrontBase64(fields["Signature"]),
                cannedPolicy(resource, expires + 1),
                padding.PKCS1v15(),
                hashes.SHA1(),
            )

    async def test_signed_url_with_default_duration(self) -> None:
        driver = self.wrap()
        self.assertIsInstance(driver, CloudFrontMiddleware)
        verifyObject(IStorageDriver, driver)
        url = await driver.redirectURL("GET", BLOB)
        self.assertSigned(url, "https://d111.cloudfront.net" + BLOB, 1_700_000_000 + 20 * 60)

    async def test_duration(self) -> None:
        url = await self.wrap(duration="3000s").redirectURL("GET", BLOB)
        self.assertSigned(url, "https://d111.cloudfront.net" + BLOB, 1_700_000_000 + 3000)
        # distribution: an integer without a unit leaves the default.
        url = await self.wrap(duration=3000).redirectURL("GET", BLOB)
        self.assertSigned(url, "https://d111.cloudfront.net" + BLOB, 1_700_000_000 + 1200)

    async def test_expiry_follows_the_clock(self) -> None:
        driver = self.wrap(duration="1h")
        self.clock.advance(100)
        url = await driver.redirectURL("GET", BLOB)
        self.assertSigned(url, "https://d111.cloudfront.net" + BLOB, 1_700_000_100 + 3600)

    async def test_baseurl_path_and_object_key(self) -> None:
        """The URL is baseurl plus the object key, the driver's root directory included (S3BucketKey)."""

        class Keyed(InMemoryDriver):
            def _key(self, path: str) -> str:
                return "root" + path

        url = await self.wrap(Keyed(), baseurl="https://cdn.example/prefix").redirectURL("GET", BLOB)
        self.assertSigned(url, "https://cdn.example/prefix/root" + BLOB, 1_700_000_000 + 1200)

    async def test_ip_filter_none_is_accepted(self) -> None:
        url = await self.wrap(ipfilteredby="none").redirectURL("GET", BLOB)
        self.assertIn("Signature=", url)

    def assertRefused(self, keyPath: tuple[str, ...], **options: object) -> ConfigError:
        with self.assertRaises(ConfigError) as caught:
            self.wrap(**options)
        self.assertEqual(caught.exception.keyPath, keyPath)
        self.assertNotIn("\n", str(caught.exception))
        return caught.exception

    def test_aws_ip_filters_are_refused(self) -> None:
        for value in ("aws", "awsregion"):
            error = self.assertRefused(
                (*KEY_PATH, "options", "ipfilteredby"), ipfilteredby=value, awsregion="us-east-1"
            )
            self.assertIn(value, str(error))
        self.assertRefused((*KEY_PATH, "options", "ipfilteredby"), ipfilteredby="gcp")

    def test_required_options(self) -> None:
        for key in ("baseurl", "privatekey", "keypairid"):
            self.assertRefused((*KEY_PATH, "options", key), **{key: None})

    def test_unreadable_or_wrong_private_key(self) -> None:
        privateKey = (*KEY_PATH, "options", "privatekey")
        error = self.assertRefused(privateKey, privatekey=str(self.directory / "missing.pem"))
        self.assertIn("missing.pem", str(error))
        garbage = self.directory / "garbage.pem"
        garbage.write_text("not a key")
        self.assertRefused(privateKey, privatekey=str(garbage))
        ecKey = writeKey(self.directory, ec.generate_private_key(ec.SECP256R1()))
        error = self.assertRefused(privateKey, privatekey=ecKey)
        self.assertIn("RSA", str(error))

    def test_bad_duration(self) -> None:
        self.assertRefused((*KEY_PATH, "options", "duration"), duration="3000")
        self.assertRefused((*KEY_PATH, "options", "duration"), duration="0s")

    async def test_api_answers_blob_get_with_307_to_the_signed_url(self) -> None:
        client = APIClient(makeAPI(driver=self.wrap()))
        digest = await client.pushBlob("repo", b"layer bytes")
        answer = await client.get(f"/v2/repo/blobs/{digest}")
        self.assertEqual(answer.code, 307)
        algorithm, hexDigest = digest.split(":")
        resource = f"https://d111.cloudfront.net/docker/registry/v2/blobs/{algorithm}/{hexDigest[:2]}/{hexDigest}/data"
        self.assertSigned(answer.header("Location"), resource, 1_700_000_000 + 1200)
        disabled = APIClient(makeAPI(driver=self.wrap(), redirectDisabled=True))
        digest = await disabled.pushBlob("repo", b"layer bytes")
        answer = await disabled.get(f"/v2/repo/blobs/{digest}")
        self.assertEqual((answer.code, answer.body), (200, b"layer bytes"))


class MiddlewareConfigTests(TestCase):
    """The C{middleware} section's shape; unknown names stop start-up when the driver is wrapped."""

    def test_storage_entries_in_order(self) -> None:
        config = parseDocument(
            {
                "version": "0.1",
                "storage": {"inmemory": None},
                "middleware": {
                    "storage": [
                        {"name": "redirect", "options": {"baseurl": "http://a"}},
                        {"name": "cloudfront", "options": {"baseurl": "http://b"}},
                    ]
                },
            }
        )
        self.assertEqual(
            config.middleware.storage,
            (
                MiddlewareEntry("redirect", {"baseurl": "http://a"}, KEY_PATH),
                MiddlewareEntry("cloudfront", {"baseurl": "http://b"}, ("middleware", "storage", "1")),
            ),
        )

    def test_shapes_refused(self) -> None:
        for section, keyPath in [
            ({"storage": {"name": "redirect"}}, ("middleware", "storage")),
            ({"storage": ["redirect"]}, KEY_PATH),
            ({"storage": [{"options": {}}]}, (*KEY_PATH, "name")),
            ({"storage": [{"name": "redirect", "option": {}}]}, (*KEY_PATH, "option")),
            ({"storage": [{"name": "redirect", "options": []}]}, (*KEY_PATH, "options")),
            ({"registry": [{"name": "x"}]}, ("middleware", "registry", "0", "name")),
            ({"repository": [{"name": "x"}]}, ("middleware", "repository", "0", "name")),
            ({"other": []}, ("middleware", "other")),
        ]:
            with self.assertRaises(ConfigError) as caught:
                parseMiddleware(section)
            self.assertEqual(caught.exception.keyPath, keyPath, section)

    def test_unknown_storage_middleware_is_refused_by_name(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            storageMiddleware(InMemoryDriver(), {"name": "rewrite", "options": {"host": "cdn"}})
        self.assertEqual(caught.exception.keyPath, (*KEY_PATH, "name"))
        self.assertIn("rewrite", str(caught.exception))
