"""
End-to-end TLS: a real C{twistd registryd} process with C{http.tls}, and skopeo verifying it
against a test CA through a certificate directory (C{--dest-cert-dir}: C{ca.crt}, and for
mutual TLS C{client.cert}/C{client.key}), never with TLS verification turned off.

Also: C{Location} headers of a plain-HTTP registry behind a TLS-terminating proxy
(C{X-Forwarded-Proto}) or with C{http.host} point clients at https.
"""

from __future__ import annotations

import http.client
import ssl
from pathlib import Path
from typing import Any

from tests.support.cases import RegistryTestCase
from tests.support.certificates import Authority
from tests.support.processes import (
    RegistryProcess,
    freePort,
    registrydCommand,
    registrydEnvironment,
    registrydOn,
    runRegistryd,
    writeConfig,
)
from tests.support.skopeo import Skopeo, SkopeoFailed, compareLayouts


class TLSRegistryProcess(RegistryProcess):
    """A registryd process serving https; it counts as up once C{GET /v2/} answers over verified TLS."""

    def __init__(self, *args: Any, context: ssl.SSLContext, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.context = context

    @property
    def url(self) -> str:
        return f"https://{self.host}"

    def _answers(self) -> bool:
        connection = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context, timeout=2)
        try:
            connection.request("GET", "/v2/")
            return connection.getresponse().status in (200, 401)
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()


def request(
    url: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> http.client.HTTPResponse:
    """One request without following redirects; the response is read before returning."""
    parts = url.split("/", 3)
    host, port = parts[2].rsplit(":", 1)
    if parts[0] == "https:":
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, int(port), context=context, timeout=60
        )
    else:
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request(method, "/" + parts[3], headers={"Content-Length": "0", **(headers or {})})
        response = connection.getresponse()
        response.read()
        return response
    finally:
        connection.close()


class SkopeoOverTLSTests(RegistryTestCase):
    """skopeo pushes and pulls over TLS it verifies against the test CA."""

    def setUp(self) -> None:
        self.ca = Authority("registryd e2e CA")
        self.root = self.workDirectory() / "root"
        self.source, self.image, _ = self.buildLayout()

    def startTLS(self, clientCAs: bool = False, **tls: Any) -> TLSRegistryProcess:
        """Start registryd with a server certificate for 127.0.0.1 from the test CA (and client CAs)."""
        work = self.workDirectory()
        certificate, key = self.ca.intermediate().server().write(work / "tls", "server")
        tls = {"certificate": str(certificate), "key": str(key), **tls}
        context = ssl.create_default_context(cadata=self.ca.pem().decode("ascii"))
        if clientCAs:
            tls["clientcas"] = [str(self.ca.writeCertificate(work / "tls" / "clients.crt"))]
            clientCertificate, clientKey = self.ca.client("readiness probe").write(work / "tls", "probe")
            context.load_cert_chain(clientCertificate, clientKey)
        port = freePort()
        config = writeConfig(work, self.root, port, extra={"http": {"addr": f"127.0.0.1:{port}", "tls": tls}})
        process = registrydOn(work, config, port, TLSRegistryProcess, context=context)
        self.addCleanup(process.stop)
        process.start()
        return process

    def certificateDirectory(self, client: bool = False) -> Path:
        """A containers-certs.d directory: the CA as ca.crt, and a client pair as client.cert/key."""
        directory = self.workDirectory() / "certs.d"
        self.ca.writeCertificate(directory / "ca.crt")
        if client:
            issued = self.ca.client("skopeo")
            (directory / "client.cert").write_bytes(issued.chainPEM())
            (directory / "client.key").write_bytes(issued.keyPEM())
        return directory

    def push(self, skopeo: Skopeo, certificates: Path, repository: str = "tls/app") -> None:
        skopeo.run(
            "copy",
            "--dest-cert-dir",
            str(certificates),
            f"oci:{self.source}:v1",
            skopeo.reference(repository, "v1"),
        )

    def pull(self, skopeo: Skopeo, certificates: Path, repository: str = "tls/app") -> Path:
        out = self.workDirectory() / "out"
        skopeo.run(
            "copy", "--src-cert-dir", str(certificates), skopeo.reference(repository, "v1"), f"oci:{out}:v1"
        )
        return out

    def assertIdentical(self, copy: Path, registry: RegistryProcess) -> None:
        problems = compareLayouts(self.source, "v1", copy, "v1")
        self.assertEqual(problems, [], f"copy differs from the original:\n{registry.logTail()}")

    def test_copy_in_and_out_over_verified_tls(self) -> None:
        registry = self.startTLS()
        skopeo = Skopeo(registry)
        certificates = self.certificateDirectory()
        self.push(skopeo, certificates)
        self.assertIdentical(self.pull(skopeo, certificates), registry)

    def test_skopeo_refuses_a_registry_its_ca_did_not_sign(self) -> None:
        registry = self.startTLS()
        skopeo = Skopeo(registry)
        stranger = self.workDirectory() / "stranger.d"
        Authority("some other CA").writeCertificate(stranger / "ca.crt")
        error = self.assertRaises(SkopeoFailed, self.push, skopeo, stranger)
        self.assertIn("certificate", str(error))

    def test_client_certificate_required(self) -> None:
        registry = self.startTLS(clientCAs=True)
        skopeo = Skopeo(registry)
        withoutClient = self.certificateDirectory()
        refused = self.assertRaises(SkopeoFailed, self.push, skopeo, withoutClient)
        self.assertIn("certificate required", str(refused))
        withClient = self.certificateDirectory(client=True)
        self.push(skopeo, withClient)
        self.assertIdentical(self.pull(skopeo, withClient), registry)
        self.assertRaises(SkopeoFailed, self.pull, skopeo, withoutClient)

    def test_location_is_https_on_a_tls_listener(self) -> None:
        registry = self.startTLS()
        response = request(f"{registry.url}/v2/tls/app/blobs/uploads/", "POST", context=registry.context)
        self.assertEqual(response.status, 202)
        self.assertTrue(
            response.headers["Location"].startswith(
                f"https://127.0.0.1:{registry.port}/v2/tls/app/blobs/uploads/"
            ),
            response.headers["Location"],
        )


class LocationBehindTLSProxyTests(RegistryTestCase):
    """A plain-HTTP registry behind a TLS-terminating proxy still sends clients to https."""

    def startPlain(self, **http: Any) -> RegistryProcess:
        """Start registryd on plain HTTP with extra http keys."""
        work = self.workDirectory()
        port = freePort()
        config = writeConfig(work, work / "root", port, extra={"http": {"addr": f"127.0.0.1:{port}", **http}})
        process = RegistryProcess(
            registrydCommand(config), port, work / "registryd.log", cwd=work, env=registrydEnvironment()
        )
        self.addCleanup(process.stop)
        process.start()
        return process

    def post(self, registry: RegistryProcess, headers: dict[str, str] | None = None) -> str:
        response = request(f"{registry.url}/v2/proxied/app/blobs/uploads/", "POST", headers)
        self.assertEqual(response.status, 202)
        return response.headers["Location"]

    def test_x_forwarded_proto_https(self) -> None:
        registry = self.startPlain()
        location = self.post(registry, {"X-Forwarded-Proto": "https", "Host": "registry.example.com"})
        self.assertTrue(
            location.startswith("https://registry.example.com/v2/proxied/app/blobs/uploads/"), location
        )
        forwarded = self.post(registry, {"Forwarded": "proto=https;host=registry.example.com:8443"})
        self.assertTrue(forwarded.startswith("https://registry.example.com:8443/v2/proxied/app/"), forwarded)
        # Without the proxy's word, the registry says what it sees: plain http.
        self.assertTrue(self.post(registry).startswith(f"http://{registry.host}/v2/"), self.post(registry))

    def test_http_host_wins(self) -> None:
        registry = self.startPlain(host="https://registry.example.com:8443")
        location = self.post(registry, {"X-Forwarded-Proto": "http", "Host": "internal:5000"})
        self.assertTrue(
            location.startswith("https://registry.example.com:8443/v2/proxied/app/blobs/uploads/"), location
        )

    def test_relative_urls(self) -> None:
        registry = self.startPlain(relativeurls=True)
        self.assertTrue(self.post(registry, {"X-Forwarded-Proto": "https"}).startswith("/v2/proxied/app/"))


class StartUpTests(RegistryTestCase):
    def test_unusable_key_stops_twistd_with_one_line_naming_it(self) -> None:
        work = self.workDirectory()
        certificate, _ = Authority().server().write(work, "server")
        missing = work / "missing.key"
        config = writeConfig(
            work,
            work / "root",
            freePort(),
            extra={
                "http": {"addr": "127.0.0.1:0", "tls": {"certificate": str(certificate), "key": str(missing)}}
            },
        )
        result = runRegistryd(work, config, 120)
        self.assertNotEqual(result.returncode, 0)
        output = (result.stdout + result.stderr).strip()
        self.assertEqual(output, f"registryd: http.tls.key: cannot read {missing}: No such file or directory")
