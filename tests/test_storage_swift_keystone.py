"""The swift driver authenticating with a real Keystone v3 in front of a Swift proxy that trusts it."""

from __future__ import annotations

import uuid

import treq
from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from registryd.storage.interfaces import StorageDriverError
from registryd.storage.swift import SwiftDriver, createDriver
from registryd.storage.swift import driver as swiftDriverModule
from registryd.storage.swift.auth import Credentials, Login
from registryd.testing.driversuite import MiB, StorageDriverTestsMixin
from tests.support.keystone import (
    DOMAIN,
    PASSWORD,
    PROJECT,
    REGION,
    TRUSTEE,
    TRUSTEE_PASSWORD,
    USERNAME,
    sharedKeystoneSwift,
)


def keystoneDriver(testCase: TestCase, **extra: object) -> SwiftDriver:
    """A driver logging in to the shared Keystone (v3, by names unless told), on a fresh container."""
    server = sharedKeystoneSwift()
    parameters = {
        "authurl": server.keystone.authURL,
        "authversion": 3,
        "username": USERNAME,
        "password": PASSWORD,
        "domain": DOMAIN,
        "tenant": PROJECT,
        "region": REGION,
        "container": f"test-{uuid.uuid4().hex[:20]}",
        **extra,
    }
    driver = createDriver(reactor, {k: v for k, v in parameters.items() if v is not None})
    testCase.addCleanup(driver.stop)
    return driver


class SwiftKeystoneNamesTests(StorageDriverTestsMixin, TestCase):
    """The shared suite, the user and project named in a domain named by name, small segments."""

    def makeDriver(self) -> SwiftDriver:
        return keystoneDriver(self, chunksize="1M")


class SwiftKeystoneIDsTests(StorageDriverTestsMixin, TestCase):
    """The shared suite again with domainid and tenantid, below a prefix, with temp-URL redirects."""

    def makeDriver(self) -> SwiftDriver:
        keystone = sharedKeystoneSwift().keystone
        return keystoneDriver(
            self,
            domain=None,
            tenant=None,
            domainid=keystone.domainID,
            tenantid=keystone.projectID,
            prefix="/registry/",
            secretkey="keystone-tempurl",
        )


class SwiftKeystoneBehaviourTests(TestCase):
    """What Keystone decides: scopes, refusals, catalog regions and token renewal."""

    async def assertStoresInProject(self, driver: SwiftDriver) -> None:
        """The driver can write and read, and its storage URL is the project's account."""
        await driver.putContent("/scope/check", b"in the project")
        self.assertEqual(await driver.getContent("/scope/check"), b"in the project")
        projectID = sharedKeystoneSwift().keystone.projectID
        self.assertTrue(driver.storageURL.endswith(f"/v1/AUTH_{projectID}"), driver.storageURL)

    async def test_default_project_without_tenant(self) -> None:
        """With no tenant, Keystone scopes the token to the user's default project."""
        await self.assertStoresInProject(keystoneDriver(self, tenant=None))

    async def test_project_domain_named_apart(self) -> None:
        """tenantdomain names the project's domain apart from the user's (given here by id)."""
        keystone = sharedKeystoneSwift().keystone
        driver = keystoneDriver(self, domain=None, domainid=keystone.domainID, tenantdomain=DOMAIN)
        await self.assertStoresInProject(driver)

    async def test_trust_scope(self) -> None:
        """A trustee logging in with trustid acts in the trustor's project."""
        keystone = sharedKeystoneSwift().keystone
        driver = keystoneDriver(
            self, username=TRUSTEE, password=TRUSTEE_PASSWORD, tenant=None, trustid=keystone.trustID
        )
        await self.assertStoresInProject(driver)

    async def test_wrong_password_is_refused_clearly(self) -> None:
        driver = keystoneDriver(self, password="not-the-password")
        with self.assertRaises(StorageDriverError) as caught:
            await driver.putContent("/x", b"x")
        message = str(caught.exception)
        self.assertEqual(caught.exception.driverName, "swift")
        self.assertIn("HTTP 401", message)
        self.assertIn(repr(USERNAME), message)
        self.assertIn(sharedKeystoneSwift().keystone.authURL, message)

    async def test_unknown_project_is_refused_clearly(self) -> None:
        driver = keystoneDriver(self, tenant="no-such-project")
        with self.assertRaises(StorageDriverError) as caught:
            await driver.putContent("/x", b"x")
        self.assertIn("HTTP 401", str(caught.exception))

    async def test_region_without_object_store(self) -> None:
        driver = keystoneDriver(self, region="RegionTwo")
        with self.assertRaises(StorageDriverError) as caught:
            await driver.putContent("/x", b"x")
        self.assertIn("no public object-store endpoint in region 'RegionTwo'", str(caught.exception))

    def countLogins(self) -> list[Credentials]:
        """Record each login the swift driver makes from now on."""
        logins: list[Credentials] = []
        authenticate = swiftDriverModule.authenticate

        async def counting(client: object, credentials: Credentials) -> Login:
            logins.append(credentials)
            return await authenticate(client, credentials)

        self.patch(swiftDriverModule, "authenticate", counting)
        return logins

    def revokedToken(self) -> str:
        """A fresh token of the user that the proxy has never cached, revoked in Keystone."""
        keystone = sharedKeystoneSwift().keystone
        token = keystone.token(USERNAME, PASSWORD, {"name": DOMAIN}, {"project": {"id": keystone.projectID}})
        keystone.revoke(token)
        return token

    async def test_rejected_token_is_renewed_once(self) -> None:
        """A token Swift answers 401 for (here revoked in Keystone) makes the driver log in again, once."""
        driver = keystoneDriver(self)
        await driver.putContent("/renew/before", b"1")
        logins = self.countLogins()
        driver._token = revoked = self.revokedToken()
        await driver.putContent("/renew/after", b"2")
        self.assertEqual(len(logins), 1)
        self.assertNotEqual(driver._token, revoked)
        self.assertEqual(await driver.getContent("/renew/after"), b"2")
        self.assertEqual(len(logins), 1)

    async def test_requests_refused_together_share_one_login(self) -> None:
        driver = keystoneDriver(self)
        await driver.putContent("/renew/before", b"1")
        logins = self.countLogins()
        driver._token = self.revokedToken()
        await gatherResults(
            [driver.putContent(f"/renew/{i}", b"%d" % i) for i in range(4)], consumeErrors=True
        )
        self.assertEqual(len(logins), 1)
        self.assertEqual(await driver.getContent("/renew/3"), b"3")

    async def test_token_renewed_before_it_expires(self) -> None:
        """Keystone says when the token expires; within a minute of that the driver logs in first."""
        driver = keystoneDriver(self)
        await driver.putContent("/renew/before", b"1")
        # Keystone's default token lifetime is an hour.
        self.assertGreater(driver.tokenExpires, reactor.seconds() + 30 * 60)
        logins = self.countLogins()
        await driver.putContent("/renew/still-valid", b"2")
        self.assertEqual(logins, [])
        old, driver.tokenExpires = driver._token, reactor.seconds() + 30
        await driver.putContent("/renew/after", b"3")
        self.assertEqual(len(logins), 1)
        self.assertNotEqual(driver._token, old)

    async def test_unscoped_token_is_refused_clearly(self) -> None:
        """A user with no default project and no tenant gets an unscoped token, hence no catalog."""
        driver = keystoneDriver(self, username=TRUSTEE, password=TRUSTEE_PASSWORD, tenant=None)
        with self.assertRaises(StorageDriverError) as caught:
            await driver.putContent("/x", b"x")
        self.assertIn("scoped to no project", str(caught.exception))

    async def test_temp_url_through_keystone_pipeline(self) -> None:
        """tempurl sits before authtoken: a signed URL is served without a token, a tampered one is not."""
        driver = keystoneDriver(self, chunksize="1M", secretkey="keystone-tempurl-key")
        writer = await driver.writer("/t/large")
        await writer.write(b"K" * (MiB + 1))
        await writer.commit()
        await driver.putContent("/t/small", b"small")
        pool = HTTPConnectionPool(reactor, persistent=False)
        url = await driver.redirectURL("GET", "/t/large")
        response = await treq.get(url, pool=pool)
        self.assertEqual(response.code, 200)
        self.assertEqual(await treq.content(response), b"K" * (MiB + 1))
        response = await treq.get(url.replace("large", "small"), pool=pool)
        await treq.content(response)
        self.assertEqual(response.code, 401)
