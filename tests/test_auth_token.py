"""
Tests for C{auth.token} (L{registryd.auth.token}, L{registryd.auth.keys}): bearer JWTs minted with
test keys (RSA, EC P-256, Ed25519), named by x5c chains, kid or nothing, checked through the API
for signature, issuer, audience, expiry, not-before, access claims and the challenges answered.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from twisted.internet.task import Clock
from twisted.trial import unittest
from twisted.web.test.requesthelper import DummyRequest

from registryd.auth.controllers import accessControllerFor
from registryd.auth.interfaces import Access, Identity
from registryd.auth.keys import (
    _distributionThumbprint,
    jwkThumbprint,
    libtrustKeyID,
    loadTrustedKeys,
)
from registryd.auth.token import TokenAccessController, controllerFromConfig
from registryd.config.auth import AuthConfig, TokenConfig
from registryd.config.errors import ConfigError
from tests.support.tokens import (
    ISSUER,
    REALM,
    SERVICE,
    Signer,
    certificate,
    claims,
    der64,
    forgeHMAC,
    forgeUnsigned,
    grant,
    mint,
    newSigningKey,
    publicJWK,
)
from tests.test_api_base import APIClient, APITestCase, digestOf, makeAPI

#: The reactor time of every test: now, so the test certificates (valid around the real now) are too.
NOW = float(int(time.time()))

CHALLENGE = f'Bearer realm="{REALM}",service="{SERVICE}"'

# One key of each kind for the whole module: RSA key generation is slow.
SIGNERS = {kind: Signer(kind) for kind in ("rsa", "ec", "ed25519")}


class TokenClient(APIClient):
    """An API client that sends C{Authorization: Bearer <token>} when it has a token."""

    token: str | None = None

    async def request(
        self, method: str, path: str, body: bytes | None = None, headers: Any = None, **kw: Any
    ):
        headers = dict(headers or {})
        if self.token is not None:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        return await super().request(method, path, body, headers, **kw)


def tokenConfig(directory: Path, **options: Any) -> TokenConfig:
    """A TokenConfig with the test realm, service and issuer."""
    return TokenConfig(realm=REALM, service=SERVICE, issuer=ISSUER, **options)


class TokenTestCase(APITestCase):
    """An API guarded by auth.token trusting a bundle of the three test signers' certificates."""

    signers = ("rsa", "ec", "ed25519")
    options: dict[str, Any] = {}

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.directory = Path(self.mktemp())
        self.directory.mkdir()
        bundle = self.directory / "bundle.pem"
        bundle.write_bytes(b"".join(_pem(SIGNERS[kind]) for kind in self.signers))
        self.controller = self.makeController(rootCertBundle=str(bundle), **self.options)
        self.api = makeAPI(accessController=self.controller)
        self.client = TokenClient(self.api)

    def makeController(self, **options: Any) -> TokenAccessController:
        return controllerFromConfig(tokenConfig(self.directory, **options), self.clock)

    def mint(self, *access: dict, kind: str = "ec", hint: str = "x5c", **claimOptions: Any) -> str:
        return mint(SIGNERS[kind], claims(NOW, access, **claimOptions), hint)

    async def assertChallenged(self, method: str, path: str, challenge: str, token: str | None) -> None:
        """A 401 UNAUTHORIZED answer with exactly this challenge."""
        self.client.token = token
        answer = await self.client.request(method, path)
        self.assertError(answer, 401, "UNAUTHORIZED")
        self.assertEqual(answer.header("WWW-Authenticate"), challenge)

    async def assertInvalid(self, token: str, path: str = "/v2/team/app/tags/list") -> None:
        await self.assertChallenged(
            "GET", path, CHALLENGE + ',scope="repository:team/app:pull",error="invalid_token"', token
        )

    async def assertAllowed(self, token: str, path: str = "/v2/team/app/tags/list") -> None:
        """The token passes: the route runs (an unknown repository's tags are 404, not 401)."""
        self.client.token = token
        answer = await self.client.get(path)
        self.assertEqual(answer.code, 404, answer.body)
        self.assertEqual(answer.errorCodes(), ["NAME_UNKNOWN"])


def _pem(signer: Signer) -> bytes:
    return signer.cert.public_bytes(serialization.Encoding.PEM)


PULL = grant("team/app", "pull")


class ChallengeTests(TokenTestCase):
    async def test_no_token_names_exactly_the_scope_needed(self) -> None:
        await self.assertChallenged(
            "GET", "/v2/team/app/tags/list", CHALLENGE + ',scope="repository:team/app:pull"', None
        )

    async def test_base_route_asks_no_scope(self) -> None:
        await self.assertChallenged("GET", "/v2/", CHALLENGE, None)

    async def test_push_asks_pull_and_push(self) -> None:
        await self.assertChallenged(
            "POST", "/v2/team/app/blobs/uploads/", CHALLENGE + ',scope="repository:team/app:pull,push"', None
        )

    async def test_basic_credentials_are_no_token(self) -> None:
        self.client.token = None
        answer = await self.client.get("/v2/", headers={"Authorization": "Basic YWxpY2U6c2VjcmV0"})
        self.assertEqual(answer.code, 401)
        self.assertEqual(answer.header("WWW-Authenticate"), CHALLENGE)

    async def test_error_detail_lists_the_accesses(self) -> None:
        self.client.token = None
        answer = await self.client.get("/v2/team/app/tags/list")
        self.assertEqual(
            answer.json()["errors"][0]["detail"],
            [{"Type": "repository", "Name": "team/app", "Action": "pull"}],
        )

    async def test_autoredirect_realm_is_the_requests_own_host(self) -> None:
        self.api.settings.accessController = self.makeController(
            rootCertBundle=str(self.directory / "bundle.pem"),
            autoRedirect=True,
            autoRedirectPath="/auth/token",
        )
        await self.assertChallenged(
            "GET", "/v2/", 'Bearer realm="http://registry.test/auth/token",service="registry.test"', None
        )
        self.client.token = None
        answer = await self.client.get("/v2/", headers={"X-Forwarded-Proto": "https"})
        self.assertEqual(
            answer.header("WWW-Authenticate"),
            'Bearer realm="https://registry.test/auth/token",service="registry.test"',
        )

    async def test_no_header_content_makes_a_500(self) -> None:
        header = base64.urlsafe_b64encode(b'{"alg":"ES256","x5c":"nope"}').rstrip(b"=").decode()
        for value in [
            "Bearer",
            "Bearer ",
            "bearer a.b.c",
            "Bearer a.b",
            "Bearer ....",
            "Bearer \xff\xfe.\u20ac.x",
            f"Bearer {header}.e30.AAAA",
            "Bearer " + base64.urlsafe_b64encode(b"[1,2]").decode() + ".e30.AA",
            "Bearer " + "A" * 10000,
            "Digest foo",
        ]:
            self.client.token = None
            answer = await self.client.get("/v2/team/app/tags/list", headers={"Authorization": value})
            self.assertEqual(answer.code, 401, (value, answer.body))


class SignatureTests(TokenTestCase):
    async def test_each_key_kind_signs_valid_tokens(self) -> None:
        for kind in ("rsa", "ec", "ed25519"):
            await self.assertAllowed(self.mint(PULL, kind=kind))

    async def test_kid_as_libtrust_key_id(self) -> None:
        for kind in ("rsa", "ec", "ed25519"):
            await self.assertAllowed(self.mint(PULL, kind=kind, hint="kid"))

    async def test_kid_as_jwk_thumbprint(self) -> None:
        for kind in ("rsa", "ec", "ed25519"):
            signer = SIGNERS[kind]
            token = mint(signer, claims(NOW, [PULL]), "none", kid=jwkThumbprint(signer.key.public_key()))
            await self.assertAllowed(token)

    async def test_kid_as_distribution_3_thumbprint(self) -> None:
        signer = SIGNERS["ec"]
        kid = _distributionThumbprint(signer.key.public_key())
        self.assertNotEqual(kid, jwkThumbprint(signer.key.public_key()))
        await self.assertAllowed(mint(signer, claims(NOW, [PULL]), "none", kid=kid))

    async def test_unknown_kid_is_invalid(self) -> None:
        await self.assertInvalid(mint(SIGNERS["ec"], claims(NOW, [PULL]), "none", kid="AAAA:BBBB"))

    async def test_no_key_named_with_several_trusted_is_invalid(self) -> None:
        await self.assertInvalid(self.mint(PULL, hint="none"))

    async def test_tampered_claims_are_invalid(self) -> None:
        header, payload, signature = self.mint(PULL).split(".")
        document = json.loads(base64.urlsafe_b64decode(payload + "=="))
        document["access"][0]["actions"].append("push")
        forged = base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()
        await self.assertInvalid(f"{header}.{forged}.{signature}")

    async def test_signed_by_another_key_with_a_trusted_certificate_is_invalid(self) -> None:
        impostor = Signer("ec", cert=SIGNERS["ec"].cert, key=newSigningKey("ec"))
        await self.assertInvalid(mint(impostor, claims(NOW, [PULL]), "x5c"))
        await self.assertInvalid(
            mint(impostor, claims(NOW, [PULL]), "none", kid=libtrustKeyID(SIGNERS["ec"].key.public_key()))
        )

    async def test_untrusted_self_signed_certificate_is_invalid(self) -> None:
        await self.assertInvalid(mint(Signer("ec"), claims(NOW, [PULL]), "x5c"))

    async def test_alg_none_is_invalid(self) -> None:
        kid = libtrustKeyID(SIGNERS["ec"].key.public_key())
        await self.assertInvalid(forgeUnsigned(claims(NOW, [PULL]), kid=kid))

    async def test_hs256_with_the_public_key_as_secret_is_invalid(self) -> None:
        public = SIGNERS["rsa"].key.public_key()
        secret = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        await self.assertInvalid(forgeHMAC(claims(NOW, [PULL]), secret, kid=libtrustKeyID(public)))
        await self.assertInvalid(forgeHMAC(claims(NOW, [PULL]), secret, x5c=[der64(SIGNERS["rsa"].cert)]))

    async def test_algorithm_outside_signingalgorithms_is_invalid(self) -> None:
        self.api.settings.accessController = self.makeController(
            rootCertBundle=str(self.directory / "bundle.pem"), signingAlgorithms=("ES256",)
        )
        await self.assertAllowed(self.mint(PULL, kind="ec"))
        await self.assertInvalid(self.mint(PULL, kind="rsa"))

    async def test_algorithm_of_another_key_type_is_invalid(self) -> None:
        # An RSA signature claimed by the EC key's certificate.
        token = mint(SIGNERS["rsa"], claims(NOW, [PULL]), "none", x5c=[der64(SIGNERS["ec"].cert)])
        await self.assertInvalid(token)

    async def test_embedded_jwk_of_a_trusted_key(self) -> None:
        signer = SIGNERS["ed25519"]
        await self.assertAllowed(mint(signer, claims(NOW, [PULL]), "none", jwk=publicJWK(signer.key)))
        stranger = Signer("ed25519")
        await self.assertInvalid(mint(stranger, claims(NOW, [PULL]), "none", jwk=publicJWK(stranger.key)))

    async def test_embedded_jwk_must_be_its_certificates_key(self) -> None:
        stranger = Signer("ec")
        await self.assertAllowed(
            mint(
                SIGNERS["ec"],
                claims(NOW, [PULL]),
                "none",
                jwk={**publicJWK(SIGNERS["ec"].key), "x5c": [der64(SIGNERS["ec"].cert)]},
            )
        )
        jwk = {**publicJWK(stranger.key), "x5c": [der64(SIGNERS["ec"].cert)]}
        await self.assertInvalid(mint(stranger, claims(NOW, [PULL]), "none", jwk=jwk))


class ChainTests(TokenTestCase):
    """x5c chains through an intermediate up to a bundle root."""

    signers = ("ec",)

    def setUp(self) -> None:
        super().setUp()
        self.rootKey = newSigningKey("ec")
        self.root = certificate(self.rootKey, "token root CA", ca=True)
        self.intermediateKey = newSigningKey("rsa")
        self.intermediate = certificate(
            self.intermediateKey, "token intermediate", self.rootKey, self.root, ca=True
        )
        self.leafKey = newSigningKey("ed25519")
        self.leaf = certificate(self.leafKey, "token signer", self.intermediateKey, self.intermediate)
        (self.directory / "bundle.pem").write_bytes(
            _pem(SIGNERS["ec"]) + self.root.public_bytes(serialization.Encoding.PEM)
        )
        self.api.settings.accessController = self.makeController(
            rootCertBundle=str(self.directory / "bundle.pem")
        )
        self.signer = Signer("ed25519", key=self.leafKey, cert=self.leaf)

    def token(self, *chain: Any, **claimOptions: Any) -> str:
        return mint(self.signer, claims(NOW, [PULL], **claimOptions), "none", x5c=[der64(c) for c in chain])

    async def test_chain_through_an_intermediate(self) -> None:
        await self.assertAllowed(self.token(self.leaf, self.intermediate))

    async def test_chain_missing_its_intermediate_is_invalid(self) -> None:
        await self.assertInvalid(self.token(self.leaf))

    async def test_intermediate_that_is_not_a_ca_is_invalid(self) -> None:
        notCA = certificate(self.intermediateKey, "token intermediate", self.rootKey, self.root, ca=False)
        leaf = certificate(self.leafKey, "token signer", self.intermediateKey, notCA)
        await self.assertInvalid(self.token(leaf, notCA))

    async def test_leaf_certificate_expired_by_the_reactors_clock_is_invalid(self) -> None:
        leaf = certificate(
            self.leafKey, "token signer", self.intermediateKey, self.intermediate, notAfter=NOW + 3600
        )
        self.clock.advance(7200)
        await self.assertInvalid(
            mint(self.signer, claims(NOW + 7200, [PULL]), "none", x5c=[der64(leaf), der64(self.intermediate)])
        )

    async def test_any_bundle_certificate_is_an_anchor(self) -> None:
        (self.directory / "only-intermediate.pem").write_bytes(
            self.intermediate.public_bytes(serialization.Encoding.PEM)
        )
        self.api.settings.accessController = self.makeController(
            rootCertBundle=str(self.directory / "only-intermediate.pem")
        )
        await self.assertAllowed(self.token(self.leaf))

    async def test_malformed_x5c_is_invalid(self) -> None:
        await self.assertInvalid(mint(self.signer, claims(NOW, [PULL]), "none", x5c=["not base64!"]))
        await self.assertInvalid(
            mint(self.signer, claims(NOW, [PULL]), "none", x5c=[base64.b64encode(b"junk").decode()])
        )


class ClaimTests(TokenTestCase):
    async def test_wrong_audience_is_invalid(self) -> None:
        await self.assertInvalid(self.mint(PULL, audience="other.registry"))

    async def test_audience_list_naming_the_service(self) -> None:
        await self.assertAllowed(self.mint(PULL, audience=["other.registry", SERVICE]))

    async def test_missing_audience_is_invalid(self) -> None:
        await self.assertInvalid(self.mint(PULL, audience=None))

    async def test_wrong_issuer_is_invalid(self) -> None:
        await self.assertInvalid(self.mint(PULL, issuer="someone-else"))

    async def test_expired_is_invalid(self) -> None:
        await self.assertInvalid(self.mint(PULL, lifetime=-3600))

    async def test_missing_exp_is_invalid(self) -> None:
        await self.assertInvalid(self.mint(PULL, exp=None))

    async def test_non_finite_exp_or_nbf_is_invalid(self) -> None:
        await self.assertInvalid(self.mint(PULL, exp=float("inf")))
        await self.assertInvalid(self.mint(PULL, nbf=float("nan")))

    async def test_expiry_leeway_edges(self) -> None:
        token = self.mint(PULL, lifetime=10)
        self.clock.advance(70)  # exp + 60 s: still within the leeway
        await self.assertAllowed(token)
        self.clock.advance(1)
        await self.assertInvalid(token)

    async def test_not_yet_valid_is_invalid(self) -> None:
        await self.assertInvalid(self.mint(PULL, nbf=NOW + 3600))

    async def test_not_before_leeway_edges(self) -> None:
        await self.assertAllowed(self.mint(PULL, nbf=NOW + 60))
        await self.assertInvalid(self.mint(PULL, nbf=NOW + 61))

    async def test_malformed_access_claim_is_invalid(self) -> None:
        for access in (
            "repository:team/app:pull",
            [{"type": "repository", "name": "team/app", "actions": "pull"}],
        ):
            await self.assertInvalid(mint(SIGNERS["ec"], {**claims(NOW), "access": access}))

    async def test_identity_is_the_subject(self) -> None:
        request = DummyRequest([b""])
        request.requestHeaders.setRawHeaders(
            b"Authorization", [b"Bearer " + self.mint(PULL, subject="bob").encode()]
        )
        identity = await self.controller.authorize(request, [Access("repository", "team/app", "pull")])
        self.assertEqual(identity, Identity("bob", "token"))


class ScopeTests(TokenTestCase):
    async def test_pull_only_cannot_push(self) -> None:
        await self.assertChallenged(
            "POST",
            "/v2/team/app/blobs/uploads/",
            CHALLENGE + ',scope="repository:team/app:pull,push",error="insufficient_scope"',
            self.mint(PULL),
        )

    async def test_grant_for_another_repository_is_insufficient(self) -> None:
        await self.assertChallenged(
            "GET",
            "/v2/team/app/tags/list",
            CHALLENGE + ',scope="repository:team/app:pull",error="insufficient_scope"',
            self.mint(grant("team/other", "pull", "push")),
        )

    async def test_push_and_pull_through_the_api(self) -> None:
        self.client.token = self.mint(grant("team/app", "pull", "push"))
        digest = await self.client.pushImage("team/app", "v1")
        answer = await self.client.get(f"/v2/team/app/manifests/{digest}")
        self.assertEqual(answer.code, 200)

    async def test_star_grants_every_action(self) -> None:
        self.client.token = self.mint(grant("team/app", "*"))
        await self.client.pushImage("team/app", "v1")
        answer = await self.client.delete("/v2/team/app/manifests/v1")
        self.assertNotEqual(answer.code, 401)

    async def test_delete_needs_delete(self) -> None:
        await self.assertChallenged(
            "DELETE",
            "/v2/team/app/manifests/v1",
            CHALLENGE + ',scope="repository:team/app:delete",error="insufficient_scope"',
            self.mint(grant("team/app", "pull", "push")),
        )

    async def test_catalog_needs_the_catalog_scope(self) -> None:
        await self.assertChallenged("GET", "/v2/_catalog", CHALLENGE + ',scope="registry:catalog:*"', None)
        await self.assertChallenged(
            "GET",
            "/v2/_catalog",
            CHALLENGE + ',scope="registry:catalog:*",error="insufficient_scope"',
            self.mint(grant("catalog", "pull", kind="registry")),
        )
        self.client.token = self.mint(grant("catalog", "*", kind="registry"))
        answer = await self.client.get("/v2/_catalog")
        self.assertEqual(answer.code, 200)

    async def test_mount_needs_pull_on_from(self) -> None:
        self.client.token = self.mint(grant("other/src", "pull", "push"))
        digest = await self.client.pushBlob("other/src", b"shared layer")
        self.assertEqual(digest, digestOf(b"shared layer"))
        path = f"/v2/team/app/blobs/uploads/?mount={digest}&from=other/src"
        await self.assertChallenged(
            "POST",
            path,
            CHALLENGE
            + ',scope="repository:team/app:pull,push repository:other/src:pull",error="insufficient_scope"',
            self.mint(grant("team/app", "pull", "push")),
        )
        self.client.token = self.mint(grant("team/app", "pull", "push"), grant("other/src", "pull"))
        answer = await self.client.post(path)
        self.assertEqual(answer.code, 201, answer.body)


class JWKSTests(TokenTestCase):
    """Keys from a JWKS file, looked up by kid."""

    def setUp(self) -> None:
        super().setUp()
        jwks = self.directory / "jwks.json"
        jwks.write_text(
            json.dumps(
                {"keys": [publicJWK(SIGNERS["rsa"].key, "rsa-1"), publicJWK(SIGNERS["ed25519"].key, "ed-1")]}
            )
        )
        self.api.settings.accessController = self.makeController(jwks=str(jwks))

    async def test_kid_names_a_jwks_key(self) -> None:
        await self.assertAllowed(mint(SIGNERS["rsa"], claims(NOW, [PULL]), "none", kid="rsa-1"))
        await self.assertAllowed(mint(SIGNERS["ed25519"], claims(NOW, [PULL]), "none", kid="ed-1"))

    async def test_kid_of_another_jwks_key_is_invalid(self) -> None:
        await self.assertInvalid(mint(SIGNERS["rsa"], claims(NOW, [PULL]), "none", kid="ed-1"))

    async def test_single_trusted_key_needs_no_kid(self) -> None:
        jwks = self.directory / "one.json"
        jwks.write_text(json.dumps({"keys": [publicJWK(SIGNERS["rsa"].key)]}))
        self.api.settings.accessController = self.makeController(jwks=str(jwks))
        await self.assertAllowed(self.mint(PULL, kind="rsa", hint="none"))
        await self.assertInvalid(self.mint(PULL, kind="ec", hint="none"))


class KeyIDTests(unittest.TestCase):
    def test_libtrust_key_id_of_the_specs_example_key(self) -> None:
        import jwt

        key = jwt.PyJWK(
            {
                "kty": "EC",
                "crv": "P-256",
                "x": "m7zUpx3b-zmVE5cymSs64POG9QcyEpJaYCD82-549_Q",
                "y": "dU3biz8sZ_8GPB-odm8Wxz3lNDr1xcAQQPQaOcr1fmc",
            }
        ).key
        self.assertEqual(libtrustKeyID(key), "PYYO:TEWU:V7JH:26JV:AQTZ:LJC3:SXVJ:XGHA:34F2:2LAQ:ZRMK:Z7Q6")

    def test_jwk_thumbprint_of_rfc_8037s_example(self) -> None:
        import jwt

        key = jwt.PyJWK(
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
        ).key
        self.assertEqual(jwkThumbprint(key), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k")

    def test_jwk_thumbprint_matches_pyjwts_jwk(self) -> None:
        import hashlib

        for kind, members in (("rsa", ("e", "kty", "n")), ("ec", ("crv", "kty", "x", "y"))):
            document = publicJWK(SIGNERS[kind].key)
            canonical = json.dumps({m: document[m] for m in members}, separators=(",", ":"), sort_keys=True)
            expected = (
                base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
            )
            self.assertEqual(jwkThumbprint(SIGNERS[kind].key.public_key()), expected)


class ConfigTests(unittest.TestCase):
    def setUp(self) -> None:
        self.directory = Path(self.mktemp())
        self.directory.mkdir()

    def assertConfigError(self, key: str, **options: Any) -> ConfigError:
        error = self.assertRaises(
            ConfigError, controllerFromConfig, tokenConfig(self.directory, **options), Clock()
        )
        self.assertEqual(error.keyPath, ("auth", "token", key))
        return error

    def write(self, name: str, content: str | bytes) -> str:
        path = self.directory / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return str(path)

    def test_unreadable_bundle(self) -> None:
        error = self.assertConfigError("rootcertbundle", rootCertBundle=str(self.directory / "missing.pem"))
        self.assertIn("missing.pem", str(error))

    def test_bundle_without_certificates(self) -> None:
        self.assertConfigError("rootcertbundle", rootCertBundle=self.write("empty.pem", "hello\n"))

    def test_malformed_bundle(self) -> None:
        broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        self.assertConfigError("rootcertbundle", rootCertBundle=self.write("broken.pem", broken))

    def test_unreadable_jwks(self) -> None:
        self.assertConfigError("jwks", jwks=str(self.directory / "missing.json"))

    def test_jwks_not_json(self) -> None:
        self.assertConfigError("jwks", jwks=self.write("jwks.json", "{nope"))

    def test_jwks_not_a_key_set(self) -> None:
        self.assertConfigError("jwks", jwks=self.write("jwks.json", '{"kty": "EC"}'))

    def test_jwks_with_a_malformed_key(self) -> None:
        error = self.assertConfigError(
            "jwks", jwks=self.write("jwks.json", '{"keys": [{"kty": "EC", "crv": "P-256", "x": "AA"}]}')
        )
        self.assertIn("key 0", str(error))

    def test_jwks_with_a_symmetric_key(self) -> None:
        error = self.assertConfigError(
            "jwks", jwks=self.write("jwks.json", '{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}')
        )
        self.assertIn("symmetric", str(error))

    def test_empty_jwks(self) -> None:
        self.assertConfigError("jwks", jwks=self.write("jwks.json", '{"keys": []}'))

    def test_hmac_and_none_are_refused(self) -> None:
        bundle = SIGNERS["ec"].writeBundle(self.directory / "bundle.pem")
        for name in ("HS256", "none", "RS257"):
            self.assertConfigError("signingalgorithms", rootCertBundle=bundle, signingAlgorithms=(name,))

    def test_built_by_the_auth_section(self) -> None:
        bundle = SIGNERS["ec"].writeBundle(self.directory / "bundle.pem")
        controller = accessControllerFor(
            AuthConfig(token=tokenConfig(self.directory, rootCertBundle=bundle)), Clock()
        )
        self.assertIsInstance(controller, TokenAccessController)

    def test_bundle_keys_are_indexed_by_every_id(self) -> None:
        bundle = SIGNERS["rsa"].writeBundle(self.directory / "bundle.pem")
        keys = loadTrustedKeys(bundle, None)
        public = SIGNERS["rsa"].key.public_key()
        for keyID in (libtrustKeyID(public), jwkThumbprint(public)):
            self.assertEqual(len(keys.byID[keyID]), 1)
