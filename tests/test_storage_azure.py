"""The azure driver: the shared driver suite and more against a real Azurite on loopback."""

from __future__ import annotations

import uuid

import treq
from twisted.internet import reactor
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from registryd.config.errors import ConfigError
from registryd.storage import azure
from registryd.storage.azure import AzureDriver, createDriver
from registryd.storage.interfaces import PathNotFound
from registryd.testing.driversuite import MiB, StorageDriverTestsMixin
from tests.support.azurite import ACCOUNT_KEY, ACCOUNT_NAME, sharedAzurite


def azuriteDriver(testCase: TestCase, **extra: object) -> AzureDriver:
    """A driver on a fresh container of the shared Azurite, stopped when the test ends."""
    azurite = sharedAzurite()
    parameters = {
        "accountname": ACCOUNT_NAME,
        "accountkey": ACCOUNT_KEY,
        "container": f"test-{uuid.uuid4().hex[:20]}",
        "serviceurl": azurite.serviceURL,
        **extra,
    }
    driver = createDriver(reactor, parameters)
    testCase.addCleanup(driver.stop)
    return driver


class AzureDriverTests(StorageDriverTestsMixin, TestCase):
    """The shared suite against Azurite."""

    def makeDriver(self) -> AzureDriver:
        return azuriteDriver(self)


class AzureDriverRootDirectoryTests(StorageDriverTestsMixin, TestCase):
    """The shared suite again, below a root directory in the container."""

    def makeDriver(self) -> AzureDriver:
        return azuriteDriver(self, rootdirectory="/registry/root/")


class AzureDriverBehaviourTests(TestCase):
    """What only block blobs, SAS URLs and Azurite itself can show."""

    def setUp(self) -> None:
        self.driver = azuriteDriver(self, chunksize="1M")

    async def test_resume_across_writer_instances_stages_no_rewrite(self) -> None:
        """Each writer adds blocks; the blocks staged before a close are kept, not sent again."""
        first = await self.driver.writer("/u/data")
        await first.write(b"a" * (MiB + 10))
        await first.close()
        committed, uncommitted = await self.driver._blockList("/u/data")
        self.assertEqual((committed, [size for _, size in uncommitted]), ([], [MiB, 10]))
        second = await self.driver.writer("/u/data", append=True)
        self.assertEqual(second.size, MiB + 10)
        await second.write(b"b" * 5)
        await second.close()
        _, uncommitted = await self.driver._blockList("/u/data")
        self.assertEqual([size for _, size in uncommitted], [MiB, 10, 5])
        third = await self.driver.writer("/u/data", append=True)
        await third.commit()
        self.assertEqual(await self.driver.getContent("/u/data"), b"a" * (MiB + 10) + b"b" * 5)
        await self.assertFailure(self.driver.writer("/u/data", append=True), PathNotFound)

    async def test_fresh_writer_keeps_committed_content_until_commit(self) -> None:
        await self.driver.putContent("/f", b"committed")
        writer = await self.driver.writer("/f")
        await writer.write(b"staged")
        await writer.close()
        fresh = await self.driver.writer("/f")
        self.assertEqual(fresh.size, 0)
        self.assertEqual(await self.driver.getContent("/f"), b"committed")
        await fresh.cancel()
        self.assertEqual(await self.driver.getContent("/f"), b"committed")

    async def test_redirect_url_is_a_working_sas_url(self) -> None:
        await self.driver.putContent("/sas/blob", b"signed content")
        url = await self.driver.redirectURL("GET", "/sas/blob")
        self.assertIn("sig=", url)
        pool = HTTPConnectionPool(reactor, persistent=False)
        response = await treq.get(url, pool=pool)
        self.assertEqual(response.code, 200)
        self.assertEqual(await treq.content(response), b"signed content")
        self.assertIsNone(await self.driver.redirectURL("PUT", "/sas/blob"))

    async def test_wrong_key_is_refused(self) -> None:
        driver = azuriteDriver(self, accountkey="d3Jvbmcga2V5")
        with self.assertRaises(Exception) as caught:
            await driver.putContent("/x", b"x")
        self.assertEqual(caught.exception.driverName, "azure")


class AzureParameterTests(TestCase):
    """Bad parameters stop start-up with a ConfigError naming storage.azure.<param>."""

    good = {"accountname": ACCOUNT_NAME, "accountkey": ACCOUNT_KEY, "container": "registry"}

    def assertRefused(self, parameters: dict, keyPath: tuple[str, ...]) -> None:
        with self.assertRaises(ConfigError) as caught:
            createDriver(reactor, parameters)
        self.assertEqual(caught.exception.keyPath, keyPath)

    def test_good_parameters(self) -> None:
        driver = createDriver(reactor, dict(self.good, realm="core.chinacloudapi.cn", rootdirectory="/a/b"))
        self.assertEqual(driver.containerURL, f"https://{ACCOUNT_NAME}.blob.core.chinacloudapi.cn/registry")
        self.assertEqual(driver._blobName("/x/y"), "a/b/x/y")

    def test_shared_key_credentials(self) -> None:
        createDriver(reactor, dict(self.good, credentials={"type": "shared_key"}))

    def test_required(self) -> None:
        for key in ("accountname", "accountkey", "container"):
            parameters = {k: v for k, v in self.good.items() if k != key}
            self.assertRefused(parameters, ("storage", "azure", key))

    def test_bad_values(self) -> None:
        cases = {
            "accountname": "Not_Valid",
            "accountkey": "not base64!",
            "container": "Bad--Name",
            "realm": "nodots",
            "serviceurl": "ftp://example.com",
            "rootdirectory": "/a/../b",
            "max_retries": -2,
            "retry_delay": "soon",
            "chunksize": 1024,
        }
        for key, value in cases.items():
            self.assertRefused(dict(self.good, **{key: value}), ("storage", "azure", key))

    def test_unknown_parameter(self) -> None:
        self.assertRefused(dict(self.good, bucket="x"), ("storage", "azure", "bucket"))

    def test_credentials(self) -> None:
        self.assertRefused(
            dict(self.good, credentials={"type": "magic"}), ("storage", "azure", "credentials", "type")
        )
        self.assertRefused(
            dict(self.good, credentials={"type": "client_secret"}),
            ("storage", "azure", "credentials", "tenantid"),
        )
        self.assertRefused(
            dict(self.good, credentials={"type": "managed_identity"}),
            ("storage", "azure", "credentials", "type"),
        )
        self.assertRefused(dict(self.good, credentials="x"), ("storage", "azure", "credentials"))

    def test_module_name(self) -> None:
        self.assertEqual(azure.NAME, "azure")
