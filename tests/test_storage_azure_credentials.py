"""
The azure driver with Entra ID credentials: bearer tokens from a loopback token endpoint,
against an HTTPS Azurite started with C{--oauth basic}; and the C{credentials} section.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import treq
from twisted.internet import reactor
from twisted.internet.ssl import Certificate
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool

from registryd.config.errors import ConfigError
from registryd.storage.azure import AzureDriver, createDriver
from registryd.storage.azure.credentials import (
    DEFAULT_AUTHORITY,
    SCOPE,
    ClientSecret,
    FederatedToken,
    parseCredentials,
)
from registryd.storage.interfaces import StorageDriverError
from registryd.storage.oauth import TokenError
from registryd.testing.driversuite import StorageDriverTestsMixin
from tests.support.azurite import ACCOUNT_NAME, Azurite, sharedOAuthAzurite
from tests.support.entraid import CLIENT_ID, SECRET, TENANT, TokenEndpoint, listenTokenEndpoint

KEY_PATH = ("storage", "azure", "credentials")


def trusting(azurite: Azurite) -> BrowserLikePolicyForHTTPS:
    """A TLS policy trusting the CA of Azurite's certificate."""
    assert azurite.authority is not None
    return BrowserLikePolicyForHTTPS(trustRoot=Certificate.loadPEM(azurite.authority.pem()))


def bearerDriver(
    testCase: TestCase, endpoint: TokenEndpoint | None = None, **credentials: object
) -> AzureDriver:
    """A driver with client_secret credentials on a fresh container of the OAuth Azurite."""
    azurite = sharedOAuthAzurite()
    endpoint = endpoint if endpoint is not None else TokenEndpoint()
    section = {
        "type": "client_secret",
        "tenantid": TENANT,
        "clientid": CLIENT_ID,
        "secret": SECRET,
        "authority": listenTokenEndpoint(testCase, endpoint),
        **credentials,
    }
    parameters = {
        "accountname": ACCOUNT_NAME,
        "container": f"oauth-{uuid.uuid4().hex[:20]}",
        "serviceurl": azurite.serviceURL,
        "credentials": section,
    }
    driver = createDriver(reactor, parameters, tlsPolicy=trusting(azurite))
    testCase.addCleanup(driver.stop)
    return driver


class AzureClientSecretDriverTests(StorageDriverTestsMixin, TestCase):
    """The shared suite against Azurite, every request authorized by a bearer token."""

    def makeDriver(self) -> AzureDriver:
        return bearerDriver(self)


class AzureBearerBehaviourTests(TestCase):
    """Tokens are fetched, cached, renewed, refused; redirects are user delegation SAS URLs."""

    async def test_token_is_fetched_once_and_reused(self) -> None:
        endpoint = TokenEndpoint()
        driver = bearerDriver(self, endpoint)
        await driver.putContent("/a", b"one")
        await driver.putContent("/b", b"two")
        self.assertEqual(await driver.getContent("/a"), b"one")
        self.assertEqual(sorted(await driver.list("/")), ["/a", "/b"])
        self.assertEqual(len(endpoint.requests), 1)
        path, form = endpoint.requests[0]
        self.assertEqual(path, f"/{TENANT}/oauth2/v2.0/token")
        self.assertEqual(
            form,
            {
                "grant_type": "client_credentials",
                "client_id": CLIENT_ID,
                "client_secret": SECRET,
                "scope": SCOPE,
            },
        )

    async def test_token_near_expiry_is_fetched_again(self) -> None:
        endpoint = TokenEndpoint(expiresIn=200)  # inside the refresh margin: every use renews it
        driver = bearerDriver(self, endpoint)
        await driver.putContent("/a", b"one")
        self.assertEqual(await driver.getContent("/a"), b"one")
        self.assertGreaterEqual(len(endpoint.requests), 2)

    async def test_refused_secret_fails_the_operation(self) -> None:
        driver = bearerDriver(self, secret="wrong")
        with self.assertRaises(StorageDriverError) as caught:
            await driver.putContent("/x", b"x")
        self.assertEqual(caught.exception.driverName, "azure")
        self.assertIn("401", str(caught.exception))
        # Creating the container failed the same way first, and said so in the log.
        self.assertTrue(self.flushLoggedErrors(TokenError))

    async def test_token_for_another_audience_is_refused_by_the_service(self) -> None:
        driver = bearerDriver(self, TokenEndpoint(audience="https://vault.azure.net"))
        with self.assertRaises(StorageDriverError):
            await driver.putContent("/x", b"x")

    async def test_redirect_is_a_working_user_delegation_sas(self) -> None:
        driver = bearerDriver(self)
        await driver.putContent("/sas/blob", b"delegated content")
        url = await driver.redirectURL("GET", "/sas/blob")
        for field in ("skoid=", "sktid=", "skt=", "ske=", "sks=b", "skv=", "sig="):
            self.assertIn(field, url)
        pool = HTTPConnectionPool(reactor, persistent=False)
        agent = Agent(reactor, contextFactory=trusting(sharedOAuthAzurite()), pool=pool)
        response = await treq.get(url, agent=agent)
        self.assertEqual(response.code, 200)
        self.assertEqual(await treq.content(response), b"delegated content")
        # The key is kept: a second URL asks the service for no new one.
        self.assertIsNotNone(driver._delegationKey)
        key = driver._delegationKey
        await driver.redirectURL("GET", "/sas/blob")
        self.assertIs(driver._delegationKey, key)
        tampered = url.replace("sp=r", "sp=rw")
        response = await treq.get(tampered, agent=agent)
        await treq.content(response)
        self.assertEqual(response.code, 403)
        self.assertIsNone(await driver.redirectURL("PUT", "/sas/blob"))

    async def test_workload_identity_token_file(self) -> None:
        tokenFile = Path(self.mktemp())
        tokenFile.write_text("federated-service-account-token\n")
        endpoint = TokenEndpoint()
        authority = listenTokenEndpoint(self, endpoint)
        environ = {
            "AZURE_TENANT_ID": TENANT,
            "AZURE_CLIENT_ID": CLIENT_ID,
            "AZURE_FEDERATED_TOKEN_FILE": str(tokenFile),
            "AZURE_AUTHORITY_HOST": authority,
        }
        credential = parseCredentials({"type": "default"}, KEY_PATH, environ)
        self.assertEqual(credential, FederatedToken(TENANT, CLIENT_ID, str(tokenFile), authority))
        azurite = sharedOAuthAzurite()
        driver = AzureDriver(
            reactor,
            ACCOUNT_NAME,
            None,
            f"wi-{uuid.uuid4().hex[:20]}",
            serviceURL=azurite.serviceURL,
            credential=credential,
            tlsPolicy=trusting(azurite),
        )
        self.addCleanup(driver.stop)
        await driver.putContent("/w", b"workload")
        self.assertEqual(await driver.getContent("/w"), b"workload")
        form = endpoint.requests[0][1]
        self.assertEqual(form["client_assertion"], "federated-service-account-token")
        self.assertEqual(
            form["client_assertion_type"], "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        )


class CredentialsSectionTests(TestCase):
    """storage.azure.credentials: the types, their keys, the environment for default."""

    good = {"type": "client_secret", "tenantid": TENANT, "clientid": CLIENT_ID, "secret": SECRET}

    def assertRefused(self, section: dict, key: str, environ: dict | None = None) -> ConfigError:
        with self.assertRaises(ConfigError) as caught:
            parseCredentials(section, KEY_PATH, environ or {})
        self.assertEqual(caught.exception.keyPath, (*KEY_PATH, key))
        self.assertNotIn("\n", str(caught.exception))
        return caught.exception

    def test_shared_key_is_no_bearer_credential(self) -> None:
        self.assertIsNone(parseCredentials({}, KEY_PATH, {}))
        self.assertIsNone(parseCredentials({"type": "shared_key"}, KEY_PATH, {}))

    def test_client_secret(self) -> None:
        self.assertEqual(
            parseCredentials(self.good, KEY_PATH, {}),
            ClientSecret(TENANT, CLIENT_ID, SECRET, DEFAULT_AUTHORITY),
        )
        for key in ("tenantid", "clientid", "secret"):
            self.assertRefused({k: v for k, v in self.good.items() if k != key}, key)
        self.assertRefused(dict(self.good, tenantid="a/../b"), "tenantid")

    def test_authority(self) -> None:
        sovereign = "https://login.microsoftonline.us"
        self.assertEqual(
            parseCredentials(dict(self.good, authority=sovereign + "/"), KEY_PATH, {}).authority, sovereign
        )
        fromEnvironment = parseCredentials(self.good, KEY_PATH, {"AZURE_AUTHORITY_HOST": sovereign})
        self.assertEqual(fromEnvironment.authority, sovereign)
        self.assertEqual(
            parseCredentials(dict(self.good, authority="http://127.0.0.1:8080"), KEY_PATH, {}).authority,
            "http://127.0.0.1:8080",
        )
        # A secret is not sent in clear text off the machine.
        self.assertRefused(dict(self.good, authority="http://login.example"), "authority")
        self.assertRefused(dict(self.good, authority="ftp://login.example"), "authority")

    def test_default_reads_the_environment(self) -> None:
        environ = {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT_ID, "AZURE_CLIENT_SECRET": SECRET}
        for kind in ("default", "default_credentials"):
            self.assertEqual(
                parseCredentials({"type": kind}, KEY_PATH, environ),
                ClientSecret(TENANT, CLIENT_ID, SECRET, DEFAULT_AUTHORITY),
            )
        error = self.assertRefused({"type": "default"}, "type", {"AZURE_TENANT_ID": TENANT})
        self.assertIn("AZURE_CLIENT_SECRET", str(error))

    def test_managed_identity_and_unknown_types_are_refused(self) -> None:
        error = self.assertRefused({"type": "managed_identity"}, "type")
        self.assertIn("managed_identity", str(error))
        self.assertRefused({"type": "magic"}, "type")
        self.assertRefused(dict(self.good, resource="x"), "resource")

    def test_driver_needs_no_account_key_with_bearer_credentials(self) -> None:
        driver = createDriver(
            reactor, {"accountname": ACCOUNT_NAME, "container": "registry", "credentials": self.good}
        )
        self.addCleanup(driver.stop)
        self.assertIsNone(driver._key)
