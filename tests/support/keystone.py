"""
An OpenStack Keystone (identity v3) on loopback, and a Swift proxy that trusts its tokens, for the
swift driver's Keystone tests.

Debian's keystone package provides the server; this writes a keystone.conf (sqlite, fernet tokens)
in a temporary directory, runs C{keystone-manage} (key repositories, schema, bootstrap of the admin
user and RegionOne), serves the public WSGI application with C{keystone-wsgi-public}'s own server,
and provisions through the REST API one domain, one project and its member user (and a trustee
user with a trust from that member), plus the object-store endpoint of a second proxy of the shared
Swift whose pipeline authenticates with keystonemiddleware's C{authtoken} and Swift's
C{keystoneauth}. C{.ci/run} installs the packages.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.processes import freePort
from tests.support.servers import (
    logTail,
    sharedServer,
    spawn,
    stopProcess,
    systemPythonEnvironment,
    waitUntilReady,
)
from tests.support.swift import SwiftAllInOne, sharedSwift
from tests.support.tools import requireTool

_PACKAGES = "keystone python3-keystonemiddleware"
ADMIN_PASSWORD = "keystone-admin-secret"
REGION = "RegionOne"
DOMAIN = "registryd-domain"
PROJECT = "registryd-project"
USERNAME = "registryd-user"
PASSWORD = "registryd-secret"
TRUSTEE = "registryd-trustee"
TRUSTEE_PASSWORD = "trustee-secret"


class KeystoneError(Exception):
    """Keystone did not start, or refused a provisioning request."""


class Keystone:
    """One Keystone below a directory: its configuration, sqlite database, key repositories and log."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = freePort()
        self.process: subprocess.Popen | None = None
        self.domainID = ""
        self.projectID = ""
        self.userID = ""
        self.trustID = ""
        self._objectStore = ""
        self._endpoint = ""

    @property
    def url(self) -> str:
        """The server's base URL (without a version)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def authURL(self) -> str:
        """The identity v3 URL a client is configured with."""
        return self.url + "/v3"

    @property
    def logPath(self) -> Path:
        return self.directory / "keystone.log"

    def _environment(self) -> dict[str, str]:
        return {**systemPythonEnvironment(), "OS_KEYSTONE_CONFIG_FILES": str(self.configPath)}

    @property
    def configPath(self) -> Path:
        return self.directory / "keystone.conf"

    def _configure(self) -> None:
        """Write keystone.conf and run keystone-manage: key repositories, schema, bootstrap."""
        manage = requireTool("keystone-manage", _PACKAGES)
        for directory in ("fernet-keys", "credential-keys"):
            (self.directory / directory).mkdir()
        self.configPath.write_text(
            "[DEFAULT]\nuse_stderr = true\n\n"
            f"[database]\nconnection = sqlite:///{self.directory / 'keystone.db'}\n\n"
            "[token]\nprovider = fernet\n\n"
            f"[fernet_tokens]\nkey_repository = {self.directory / 'fernet-keys'}\n\n"
            f"[fernet_receipts]\nkey_repository = {self.directory / 'fernet-keys'}\n\n"
            f"[credential]\nkey_repository = {self.directory / 'credential-keys'}\n\n"
            "[cache]\nenabled = false\n"
        )
        owner = ["--keystone-user", "root", "--keystone-group", "root"]
        for arguments in (
            ["fernet_setup", *owner],
            ["credential_setup", *owner],
            ["db_sync"],
            [
                "bootstrap",
                "--bootstrap-password",
                ADMIN_PASSWORD,
                "--bootstrap-public-url",
                self.authURL + "/",
                "--bootstrap-region-id",
                REGION,
            ],
        ):
            with open(self.logPath, "ab") as log:
                done = subprocess.run(
                    [manage, "--config-file", str(self.configPath), *arguments],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.directory,
                    env=self._environment(),
                )
            if done.returncode != 0:
                raise KeystoneError(f"keystone-manage {arguments[0]} failed: {logTail(self.logPath, 30)}")
        # Keystone leaves a read transaction open after creating a project, and in sqlite's default
        # journal mode that reader keeps every later write from committing ("database is locked");
        # write-ahead logging lets readers and the writer go on side by side (the mode is persistent).
        with sqlite3.connect(self.directory / "keystone.db") as database:
            database.execute("PRAGMA journal_mode=WAL")

    def start(self, timeout: float = 60.0) -> None:
        """Configure, serve the public API, wait until GET /v3 answers, and provision the test users."""
        self._configure()
        server = requireTool("keystone-wsgi-public", _PACKAGES)
        self.process = spawn(
            [server, "--host", "127.0.0.1", "--port", str(self.port)],
            self.logPath,
            cwd=self.directory,
            env=self._environment(),
        )
        waitUntilReady(
            self.process,
            self._answers,
            timeout,
            0.2,
            lambda status: KeystoneError(f"keystone exited with {status}: {logTail(self.logPath, 30)}"),
            lambda: KeystoneError(f"keystone did not answer within {timeout}s: {logTail(self.logPath, 30)}"),
            self.stop,
        )
        try:
            self._provision()
        except BaseException:
            self.stop()
            raise

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.authURL, timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server."""
        if self.process is not None:
            stopProcess(self.process, 10, group=True)
            self.process = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- the REST API --------------------------------------------------------------------

    def token(self, username: str, password: str, domain: dict, scope: dict | None = None) -> str:
        """A token for a user (password method), scoped as C{scope} says."""
        auth: dict[str, Any] = {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": username, "password": password, "domain": domain}},
            }
        }
        if scope is not None:
            auth["scope"] = scope
        headers, _ = self.call("POST", "/auth/tokens", {"auth": auth})
        return headers["X-Subject-Token"]

    def adminToken(self) -> str:
        """A token of the bootstrap admin, scoped to the admin project."""
        default = {"id": "default"}
        return self.token("admin", ADMIN_PASSWORD, default, {"project": {"name": "admin", "domain": default}})

    def call(self, method: str, path: str, body: dict | None = None, token: str = "") -> tuple[Any, Any]:
        """One identity v3 request; (headers, decoded JSON or None); KeystoneError unless 2xx."""
        request = urllib.request.Request(
            self.authURL + path,
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Content-Type": "application/json", **({"X-Auth-Token": token} if token else {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                content = response.read()
                return response.headers, json.loads(content) if content else None
        except urllib.error.HTTPError as error:
            raise KeystoneError(f"{method} {path}: HTTP {error.code} {error.read()[:300]!r}") from None

    def revoke(self, token: str) -> None:
        """Revoke a token (DELETE /v3/auth/tokens)."""
        request = urllib.request.Request(
            self.authURL + "/auth/tokens",
            method="DELETE",
            headers={"X-Auth-Token": self.adminToken(), "X-Subject-Token": token},
        )
        with urllib.request.urlopen(request, timeout=30):
            pass

    def _provision(self) -> None:
        """The domain, its project, a member user whose default project it is, a trustee and a trust."""
        admin = self.adminToken()

        def create(kind: str, fields: dict) -> str:
            _, answer = self.call("POST", f"/{kind}s", {kind: fields}, admin)
            return answer[kind]["id"]

        self.domainID = create("domain", {"name": DOMAIN})
        self.projectID = create("project", {"name": PROJECT, "domain_id": self.domainID})
        self.userID = create(
            "user",
            {
                "name": USERNAME,
                "password": PASSWORD,
                "domain_id": self.domainID,
                "default_project_id": self.projectID,
            },
        )
        trusteeID = create(
            "user", {"name": TRUSTEE, "password": TRUSTEE_PASSWORD, "domain_id": self.domainID}
        )
        _, roles = self.call("GET", "/roles?name=member", token=admin)
        memberRole = roles["roles"][0]["id"]
        self.call("PUT", f"/projects/{self.projectID}/users/{self.userID}/roles/{memberRole}", token=admin)
        userToken = self.token(USERNAME, PASSWORD, {"id": self.domainID}, {"project": {"id": self.projectID}})
        trust = {
            "trustor_user_id": self.userID,
            "trustee_user_id": trusteeID,
            "project_id": self.projectID,
            "impersonation": True,
            "roles": [{"name": "member"}],
        }
        _, answer = self.call("POST", "/OS-TRUST/trusts", {"trust": trust}, userToken)
        self.trustID = answer["trust"]["id"]

    def registerObjectStore(self, url: str) -> None:
        """Make C{url} the public object-store endpoint of RegionOne (replacing an earlier one)."""
        admin = self.adminToken()
        if self._endpoint:
            self.call("PATCH", f"/endpoints/{self._endpoint}", {"endpoint": {"url": url}}, admin)
            return
        _, answer = self.call(
            "POST", "/services", {"service": {"type": "object-store", "name": "swift"}}, admin
        )
        self._objectStore = answer["service"]["id"]
        endpoint = {"service_id": self._objectStore, "interface": "public", "url": url, "region_id": REGION}
        _, answer = self.call("POST", "/endpoints", {"endpoint": endpoint}, admin)
        self._endpoint = answer["endpoint"]["id"]


def _startedKeystone(directory: Path) -> Keystone:
    keystone = Keystone(directory)
    keystone.start()
    return keystone


def sharedKeystone() -> Keystone:
    """One Keystone for the whole test run, stopped at exit."""
    return sharedServer("keystone", _startedKeystone, Keystone.alive)


class KeystoneSwift:
    """A proxy of the shared Swift that takes the shared Keystone's tokens (authtoken + keystoneauth)."""

    name = "keystone-proxy"

    def __init__(self, keystone: Keystone, swift: SwiftAllInOne) -> None:
        self.keystone = keystone
        self.swift = swift
        self.port = freePort()

    @property
    def proxyURL(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Name this proxy in Keystone's catalog, then start it."""
        self.keystone.registerObjectStore(f"{self.proxyURL}/v1/AUTH_%(tenant_id)s")
        auth = (
            "[filter:authtoken]\npaste.filter_factory = keystonemiddleware.auth_token:filter_factory\n"
            f"www_authenticate_uri = {self.keystone.authURL}\nauth_url = {self.keystone.url}\n"
            "auth_type = password\nuser_domain_id = default\nproject_domain_id = default\n"
            f"project_name = admin\nusername = admin\npassword = {ADMIN_PASSWORD}\n"
            # The catalog has public endpoints only; the middleware looks for an internal one by default.
            "interface = public\ndelay_auth_decision = true\nservice_token_roles_required = true\n"
            f"memcached_servers = 127.0.0.1:{self.swift.ports['memcached']}\n\n"
            "[filter:keystoneauth]\nuse = egg:swift#keystoneauth\n"
            "operator_roles = admin, member\nreseller_prefix = AUTH_\n"
        )
        self.swift.startProxy(self.name, "authtoken keystoneauth", auth, self.port)

    def stop(self) -> None:
        self.swift.stopServer(self.name)

    def alive(self) -> bool:
        process = self.swift.processes.get(self.name)
        return self.keystone.alive() and process is not None and process.poll() is None


def _startedKeystoneSwift(directory: Path) -> KeystoneSwift:
    requireTool("keystone-manage", _PACKAGES)
    server = KeystoneSwift(sharedKeystone(), sharedSwift())
    server.start()
    return server


def sharedKeystoneSwift() -> KeystoneSwift:
    """The Keystone-authenticated Swift proxy for the whole test run, stopped at exit."""
    return sharedServer("keystone-swift", _startedKeystoneSwift, KeystoneSwift.alive)
