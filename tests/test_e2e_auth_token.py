"""
End-to-end: a real C{twistd registryd} guarded by C{auth.token}, a tiny token server run by the
test on loopback, and skopeo going through the real flow: 401 challenge, token from the realm
with basic credentials, retry with the bearer token.
"""

from __future__ import annotations

import json

from tests.support import http
from tests.support.cases import RegistryTestCase
from tests.support.layouts import OCILayout
from tests.support.skopeo import Skopeo, SkopeoFailed
from tests.support.tokens import SERVICE, startTokenServer

USERS = {
    "pusher": ("push-secret", {"e2e/app": ["pull", "push"]}),
    "puller": ("pull-secret", {"e2e/app": ["pull"]}),
}


class TokenAuthTests(RegistryTestCase):
    """skopeo against registryd with bearer tokens from a test token server."""

    def setUp(self) -> None:
        work = self.workDirectory()
        self.tokens = startTokenServer(self, USERS)
        self.realm = self.tokens.realm
        self.registry = self.startRegistryd(
            work / "root", auth=self.tokens.authSection(work / "token-signer.pem")
        )
        self.skopeo = Skopeo(self.registry)
        self.source = work / "source"
        OCILayout(self.source, seed=3).addImage([300 * 1024, 40 * 1024], tag="v1")

    def push(self, *credentials: str) -> str:
        """skopeo copy of the test image to e2e/app:v1 with the given credential options."""
        return self.skopeo.run(
            "copy",
            "--dest-tls-verify=false",
            *credentials,
            f"oci:{self.source}:v1",
            self.skopeo.reference("e2e/app", "v1"),
        ).stderr

    def bearer(self, user: str, scope: str) -> str:
        """A token for user from the token server, as a client would get it."""
        return self.tokens.fetch(user, scope)

    def test_challenge_names_the_realm_and_scope(self) -> None:
        answer = http.request("GET", f"{self.registry.url}/v2/e2e/app/tags/list")
        self.assertEqual(answer.status, 401)
        self.assertEqual(
            answer.headers["WWW-Authenticate"],
            f'Bearer realm="{self.realm}",service="{SERVICE}",scope="repository:e2e/app:pull"',
        )

    def test_user_granted_push_pushes_and_pulls(self) -> None:
        self.push("--dest-creds", "pusher:push-secret")
        asked = [request for request in self.tokens.requests if request["user"] == "pusher"]
        self.assertIn("repository:e2e/app:pull,push", [s for request in asked for s in request["scopes"]])
        out = self.workDirectory() / "out"
        self.skopeo.run(
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            "puller:pull-secret",
            self.skopeo.reference("e2e/app", "v1"),
            f"oci:{out}:pulled",
        )
        self.assertTrue(json.loads((out / "index.json").read_text())["manifests"])

    def test_pull_only_user_cannot_push(self) -> None:
        error = self.assertRaises(SkopeoFailed, self.push, "--dest-creds", "puller:pull-secret")
        self.assertIn("requested access to the resource is denied", str(error))
        self.assertIn("token of puller does not grant repository:e2e/app:push", self.registry.logTail(400))
        token = self.bearer("pusher", "repository:e2e/app:pull")
        answer = http.request(
            "GET", f"{self.registry.url}/v2/e2e/app/tags/list", headers={"Authorization": f"Bearer {token}"}
        )
        self.assertEqual((answer.status, answer.errorCodes()), (404, ["NAME_UNKNOWN"]))

    def test_wrong_password_and_no_credentials_fail(self) -> None:
        self.assertRaises(SkopeoFailed, self.push, "--dest-creds", "pusher:wrong")
        self.assertRaises(SkopeoFailed, self.push, "--dest-no-creds")
