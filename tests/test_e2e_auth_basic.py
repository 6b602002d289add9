"""
End-to-end basic auth: a real C{twistd registryd} with C{auth.htpasswd} (and an access file),
driven by skopeo with C{--dest-creds}/C{--src-creds}, over plain HTTP and over TLS.
"""

from __future__ import annotations

import base64
import os
import re
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import bcrypt
import yaml

from tests.support.cases import RegistryTestCase
from tests.support.certificates import Authority
from tests.support.layouts import OCILayout
from tests.support.processes import (
    RegistryProcess,
    distributionCommand,
    freePort,
    registrydCommand,
    registrydEnvironment,
    registrydOn,
    writeConfig,
)
from tests.support.skopeo import Skopeo, SkopeoFailed, compareLayouts
from tests.support.tools import requireTool
from tests.test_e2e_tls import TLSRegistryProcess

PASSWORDS = {"alice": "alice-secret", "buildbot": "ci-token", "carol": "carol-pw"}

ACCESS = {
    "groups": {"admins": ["alice"], "ci": ["buildbot"]},
    "rules": [
        {"repositories": ["ci/*"], "groups": ["ci"], "actions": ["pull", "push"]},
        {"repositories": ["**"], "groups": ["admins"], "actions": ["pull", "push", "delete"]},
    ],
    "catalog": {"groups": ["admins"]},
    "anonymous": {"pull": ["public/**"]},
}


def writeHtpasswd(path: Path) -> Path:
    """An htpasswd file of $2y$ entries (as Apache's htpasswd -B writes them) for PASSWORDS."""
    lines = []
    for user, password in PASSWORDS.items():
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(5))
        lines.append(f"{user}:$2y${hashed.decode()[4:]}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


class BasicAuthTests(RegistryTestCase):
    def setUp(self) -> None:
        self.root = self.workDirectory() / "root"
        self.source = self.workDirectory() / "source"
        OCILayout(self.source, seed=7).addImage([96 * 1024, 32 * 1024], tag="v1")
        self.htpasswd = writeHtpasswd(self.workDirectory() / "auth" / "htpasswd")

    def startWithAuth(self, access: dict | None = None, path: Path | None = None) -> RegistryProcess:
        htpasswd: dict[str, Any] = {"realm": "e2e registry", "path": str(path or self.htpasswd)}
        if access is not None:
            accessPath = self.workDirectory() / "access.yml"
            accessPath.write_text(yaml.safe_dump(access))
            htpasswd["access"] = str(accessPath)
        return self.startRegistryd(self.root, auth={"htpasswd": htpasswd})

    def push(self, skopeo: Skopeo, repository: str, user: str | None, password: str | None = None) -> None:
        arguments = ["copy", "--dest-tls-verify=false"]
        if user is not None:
            arguments += ["--dest-creds", f"{user}:{password or PASSWORDS[user]}"]
        skopeo.run(*arguments, f"oci:{self.source}:v1", skopeo.reference(repository, "v1"))

    def pull(self, skopeo: Skopeo, repository: str, user: str | None, password: str | None = None) -> Path:
        out = self.workDirectory() / "out"
        arguments = ["copy", "--src-tls-verify=false"]
        if user is not None:
            arguments += ["--src-creds", f"{user}:{password or PASSWORDS[user]}"]
        skopeo.run(*arguments, skopeo.reference(repository, "v1"), f"oci:{out}:v1")
        return out

    def assertRefused(self, error: SkopeoFailed, *words: str) -> None:
        """skopeo's own message (not the registry's log after it) names one of the words."""
        said = str(error).split("--- registryd log ---")[0].lower()
        self.assertTrue(any(word in said for word in words), said)

    def assertIdentical(self, copy: Path) -> None:
        self.assertEqual(compareLayouts(self.source, "v1", copy, "v1"), [])

    def test_push_and_pull_need_the_right_credentials(self) -> None:
        registry = self.startWithAuth()
        skopeo = Skopeo(registry)
        refused = self.assertRaises(SkopeoFailed, self.push, skopeo, "team/app", None)
        self.assertRefused(refused, "unauthorized", "authentication required")
        self.push(skopeo, "team/app", "carol")
        wrong = self.assertRaises(SkopeoFailed, self.pull, skopeo, "team/app", "carol", "not-her-password")
        self.assertRefused(wrong, "unauthorized", "authentication required")
        self.assertRaises(SkopeoFailed, self.pull, skopeo, "team/app", "mallory", "carol-pw")
        self.assertIdentical(self.pull(skopeo, "team/app", "carol"))

    def test_a_ci_user_pushes_to_ci_only(self) -> None:
        registry = self.startWithAuth(ACCESS)
        skopeo = Skopeo(registry)
        self.push(skopeo, "ci/app", "buildbot")
        denied = self.assertRaises(SkopeoFailed, self.push, skopeo, "team/app", "buildbot")
        self.assertRefused(denied, "403", "forbidden", "denied")
        self.push(skopeo, "team/app", "alice")
        self.assertIdentical(self.pull(skopeo, "ci/app", "buildbot"))
        self.assertRaises(SkopeoFailed, self.pull, skopeo, "team/app", "carol")

    def test_anonymous_pull_of_public_repositories(self) -> None:
        registry = self.startWithAuth(ACCESS)
        skopeo = Skopeo(registry)
        self.push(skopeo, "public/base", "alice")
        self.push(skopeo, "team/app", "alice")
        self.assertIdentical(self.pull(skopeo, "public/base", None))
        self.assertRaises(SkopeoFailed, self.pull, skopeo, "team/app", None)
        self.assertRaises(SkopeoFailed, self.push, skopeo, "public/base", None)

    def test_first_start_creates_the_file_and_logs_the_password(self) -> None:
        path = self.workDirectory() / "new" / "htpasswd"
        registry = self.startWithAuth(path=path)
        self.assertTrue(path.exists())
        # The log line is written before the listener answers, so it is there by now.
        match = re.search(r"user 'docker' and password '([^']+)'", registry.logTail(200))
        self.assertIsNotNone(match, registry.logTail())
        skopeo = Skopeo(registry)
        self.assertRaises(SkopeoFailed, self.push, skopeo, "team/app", None)
        self.push(skopeo, "team/app", "docker", match.group(1))

    def test_over_tls_with_credentials(self) -> None:
        ca = Authority("registryd basic auth e2e CA")
        work = self.workDirectory()
        certificate, key = ca.server().write(work / "tls", "server")
        port = freePort()
        extra = {
            "http": {"addr": f"127.0.0.1:{port}", "tls": {"certificate": str(certificate), "key": str(key)}},
            "auth": {"htpasswd": {"realm": "e2e registry", "path": str(self.htpasswd)}},
        }
        config = writeConfig(work, self.root, port, extra=extra)
        context = ssl.create_default_context(cadata=ca.pem().decode("ascii"))
        registry = registrydOn(work, config, port, TLSRegistryProcess, context=context)
        self.addCleanup(registry.stop)
        registry.start()
        certificates = self.workDirectory() / "certs.d"
        ca.writeCertificate(certificates / "ca.crt")
        skopeo = Skopeo(registry)
        source, target = f"oci:{self.source}:v1", skopeo.reference("tls/app", "v1")
        refused = self.assertRaises(
            SkopeoFailed, skopeo.run, "copy", "--dest-cert-dir", str(certificates), source, target
        )
        self.assertRefused(refused, "unauthorized", "authentication required")
        creds = f"alice:{PASSWORDS['alice']}"
        skopeo.run("copy", "--dest-cert-dir", str(certificates), "--dest-creds", creds, source, target)
        out = self.workDirectory() / "out"
        skopeo.run("copy", "--src-cert-dir", str(certificates), "--src-creds", creds, target, f"oci:{out}:v1")
        self.assertIdentical(out)


def statusOf(url: str, user: str, password: str) -> int:
    """The status of GET url with Basic credentials."""
    request = urllib.request.Request(url)
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


class DebianConfigTests(RegistryTestCase):
    """Debian's config names a directory as auth.htpasswd.path: both registries start, refusing all."""

    def test_a_directory_as_htpasswd_path_starts_like_distribution(self) -> None:
        binary = requireTool("docker-registry")
        work = self.workDirectory()
        directory = work / "etc-docker-registry"
        directory.mkdir()
        auth = {"htpasswd": {"realm": "basic-realm", "path": str(directory)}}
        registries = []
        for name in ("registryd", "distribution"):
            port = freePort()
            config = writeConfig(work / name, work / name / "root", port, extra={"auth": auth})
            if name == "registryd":
                command, env = registrydCommand(config), registrydEnvironment()
            else:
                command = distributionCommand(config, binary)
                env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
            process = RegistryProcess(command, port, work / name / "log", cwd=work, env=env, name=name)
            self.addCleanup(process.stop)
            process.start()
            registries.append(process)
        ours, theirs = registries
        self.assertEqual(statusOf(ours.url + "/v2/", "docker", "anything"), 401)
        # distribution 2.8 answers 400 here (its failed read is no auth challenge); we challenge.
        self.assertIn(statusOf(theirs.url + "/v2/", "docker", "anything"), (400, 401))
        self.assertIn("auth.htpasswd.path", ours.logTail())
        self.assertEqual(list(directory.iterdir()), [])
