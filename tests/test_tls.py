"""
TLS on the registry's listener (C{http.tls}), in process over real sockets: the service that
L{registryd.service.makeService} builds, and clients (Python's C{ssl} in a thread, and treq
with Twisted's client TLS and service-identity) that verify it against a test CA.
"""

from __future__ import annotations

import datetime
import http.client
import os
import shutil
import signal
import socket
import ssl
import tempfile
from pathlib import Path
from typing import Any

import treq
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.ssl import Certificate
from twisted.internet.threads import deferToThread
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial import unittest
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool, ResponseFailed

from registryd.config import ConfigError, parseDocument
from registryd.config.tls import DEFAULT_SUITES, parseTLS
from registryd.reload import Reloader, SIGHUPService, onReload, reloader
from registryd.service import makeService
from tests.support.certificates import Authority, fingerprint, keyPEM
from tests.support.processes import freePort

#: What a refused handshake looks like to a client, depending on the TLS version and timing:
#: an alert (SSLError), or the server closing the connection under it.
REFUSED = (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine)


class _Connection(http.client.HTTPSConnection):
    """An HTTPS connection to a TCP address or a unix socket, verifying the server as C{serverName}."""

    def __init__(self, address: Any, context: ssl.SSLContext, serverName: str = "localhost") -> None:
        super().__init__(serverName, context=context, timeout=60)
        self._address = address

    def connect(self) -> None:
        family = socket.AF_UNIX if isinstance(self._address, str) else socket.AF_INET
        raw = socket.socket(family, socket.SOCK_STREAM)
        raw.settimeout(self.timeout)
        try:
            raw.connect(self._address)
            self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]
        except BaseException:
            raw.close()
            raise


class Exchange:
    """What one request over TLS saw: the answer, and the TLS session it came over."""

    def __init__(self, connection: _Connection, path: str = "/v2/", method: str = "GET") -> None:
        connection.request(method, path, headers={"Content-Length": "0"} if method == "POST" else {})
        response = connection.getresponse()
        self.status = response.status
        self.headers = dict(response.getheaders())
        self.body = response.read()
        sock = connection.sock
        self.peer = fingerprint(sock.getpeercert(binary_form=True))
        self.cipher = sock.cipher()[0]
        self.version = sock.version()


def clientContext(
    authority: Authority,
    client: Any = None,
    directory: Path | None = None,
    maximum: ssl.TLSVersion | None = None,
    ciphers: str | None = None,
) -> ssl.SSLContext:
    """A client context trusting only authority, optionally presenting a client certificate."""
    context = ssl.create_default_context(cadata=authority.pem().decode("ascii"))
    if maximum is not None:
        context.maximum_version = maximum
    if ciphers is not None:
        context.set_ciphers(ciphers)
    if client is not None:
        assert directory is not None
        certificatePath, keyPath = client.write(directory, "client")
        context.load_cert_chain(certificatePath, keyPath)
    return context


class TLSTestCase(unittest.TestCase):
    """Starts registryd with an http.tls section on loopback and talks to it over real sockets."""

    def setUp(self) -> None:
        self.directory = Path(self.mktemp()).resolve()
        self.directory.mkdir(parents=True)
        self.ca = Authority("registryd test CA")
        self.otherCA = Authority("another CA")

    def writeServer(self, issued: Any, name: str = "server") -> dict[str, str]:
        """Write a server certificate (with its chain) and key; the tls keys naming them."""
        certificatePath, keyPath = issued.write(self.directory, name)
        return {"certificate": str(certificatePath), "key": str(keyPath)}

    def config(self, tls: dict, net: str = "tcp") -> Any:
        if net == "unix":
            # A unix socket path must be short (108 bytes): trial's temporary directories may not be.
            socketDirectory = tempfile.mkdtemp(prefix="registryd-tls-")
            self.addCleanup(shutil.rmtree, socketDirectory, True)
            self.address: Any = os.path.join(socketDirectory, "registry.sock")
            addr = self.address
        else:
            self.address = ("127.0.0.1", freePort())
            addr = f"127.0.0.1:{self.address[1]}"
        document = {
            "version": 0.1,
            "log": {"accesslog": {"disabled": True}},
            "storage": {"inmemory": {}},
            "http": {"addr": addr, "net": net, "secret": "tls-tests", "tls": tls},
        }
        return parseDocument(document)

    def start(self, tls: dict, net: str = "tcp") -> Any:
        """Start the registry service; stopped, and its connections awaited, when the test ends."""
        service = makeService(self.config(tls, net), reactor)
        closed: list[Deferred] = []
        factory = service.getServiceNamed("http").factory
        build = factory.buildProtocol

        def tracked(address: Any) -> Any:
            protocol = build(address)
            lost, gone = protocol.connectionLost, Deferred()
            closed.append(gone)

            def connectionLost(reason: Any) -> None:
                lost(reason)
                gone.callback(None)

            protocol.connectionLost = connectionLost
            return protocol

        factory.buildProtocol = tracked
        self.addCleanup(lambda: gatherResults(closed))
        service.privilegedStartService()
        service.startService()
        self.addCleanup(service.stopService)
        return service

    def fetch(self, context: ssl.SSLContext, path: str = "/v2/", method: str = "GET") -> Deferred:
        """One request on a fresh connection, in a thread; fires with an L{Exchange}."""

        def run() -> Exchange:
            connection = _Connection(self.address, context)
            try:
                return Exchange(connection, path, method)
            finally:
                connection.close()

        return deferToThread(run)

    async def assertRefused(self, context: ssl.SSLContext) -> Exception:
        """The handshake (or the first read after it, in TLS 1.3) fails: no HTTP answer comes."""
        try:
            exchange = await self.fetch(context)
        except REFUSED as e:
            return e
        self.fail(f"expected the connection to be refused, got HTTP {exchange.status}")


class ServingTests(TLSTestCase):
    async def test_get_v2_over_tls_verified_by_twisted_client_and_service_identity(self) -> None:
        self.start(self.writeServer(self.ca.server()))
        pool = HTTPConnectionPool(reactor, persistent=False)
        policy = BrowserLikePolicyForHTTPS(trustRoot=Certificate.loadPEM(self.ca.pem()))
        agent = Agent(reactor, contextFactory=policy, pool=pool)
        response = await treq.get(f"https://127.0.0.1:{self.address[1]}/v2/", agent=agent)
        body = await treq.json_content(response)
        self.assertEqual((response.code, body), (200, {}))
        self.assertEqual(response.headers.getRawHeaders("Docker-Distribution-API-Version"), ["registry/2.0"])

    async def test_twisted_client_refuses_a_certificate_from_another_ca(self) -> None:
        self.start(self.writeServer(self.otherCA.server()))
        pool = HTTPConnectionPool(reactor, persistent=False)
        policy = BrowserLikePolicyForHTTPS(trustRoot=Certificate.loadPEM(self.ca.pem()))
        agent = Agent(reactor, contextFactory=policy, pool=pool)
        with self.assertRaises(ResponseFailed):
            await treq.get(f"https://127.0.0.1:{self.address[1]}/v2/", agent=agent)

    async def test_chain_after_the_leaf_is_served(self) -> None:
        # The client trusts only the root: it can verify the leaf only if the server sends the
        # intermediate that signed it.
        intermediate = self.ca.intermediate()
        server = intermediate.server()
        self.start(self.writeServer(server))
        exchange = await self.fetch(clientContext(self.ca))
        self.assertEqual(exchange.status, 200)
        self.assertEqual(exchange.peer, fingerprint(server.certificate))

    async def test_leaf_without_its_intermediate_does_not_verify(self) -> None:
        server = self.ca.intermediate().server()
        certificatePath, keyPath = server.write(self.directory, "server", chain=False)
        self.start({"certificate": str(certificatePath), "key": str(keyPath)})
        await self.assertRefused(clientContext(self.ca))

    async def test_rsa_key(self) -> None:
        server = self.ca.server(keyKind="rsa")
        self.start(self.writeServer(server))
        exchange = await self.fetch(clientContext(self.ca))
        self.assertEqual((exchange.status, exchange.peer), (200, fingerprint(server.certificate)))

    async def test_tls_over_a_unix_socket(self) -> None:
        self.start(self.writeServer(self.ca.server()), net="unix")
        exchange = await self.fetch(clientContext(self.ca))
        self.assertEqual(exchange.status, 200)

    async def test_location_headers_say_https(self) -> None:
        self.start(self.writeServer(self.ca.server()))
        exchange = await self.fetch(clientContext(self.ca), "/v2/library/app/blobs/uploads/", "POST")
        self.assertEqual(exchange.status, 202)
        self.assertTrue(
            exchange.headers["Location"].startswith("https://localhost/v2/library/app/blobs/uploads/"),
            exchange.headers["Location"],
        )

    async def test_alpn_offers_only_http11(self) -> None:
        self.start(self.writeServer(self.ca.server()))
        context = clientContext(self.ca)
        context.set_alpn_protocols(["h2", "http/1.1"])

        def negotiated() -> str | None:
            connection = _Connection(self.address, context)
            try:
                connection.connect()
                return connection.sock.selected_alpn_protocol()
            finally:
                connection.close()

        self.assertEqual(await deferToThread(negotiated), "http/1.1")


class DrainTests(TLSTestCase):
    async def test_stopping_closes_idle_tls_connections(self) -> None:
        service = self.start(self.writeServer(self.ca.server()))
        listener = service.getServiceNamed("http")
        connection = _Connection(self.address, clientContext(self.ca))
        self.addCleanup(connection.close)
        self.assertEqual((await deferToThread(Exchange, connection)).status, 200)
        # The listener tracks the HTTP channel inside the TLS layer.
        self.assertEqual(len(listener.connections), 1)
        await service.stopService()
        # The server closed the idle keep-alive connection: the client reads the end of the stream.
        self.assertEqual(await deferToThread(connection.sock.recv, 1), b"")


class MutualTLSTests(TLSTestCase):
    def mutual(self, **extra: Any) -> None:
        caPath = self.ca.writeCertificate(self.directory / "clients-ca.crt")
        self.start({**self.writeServer(self.ca.server()), "clientcas": [str(caPath)], **extra})

    async def test_client_without_a_certificate_is_refused(self) -> None:
        self.mutual()
        await self.assertRefused(clientContext(self.ca))

    async def test_client_certificate_from_another_ca_is_refused(self) -> None:
        self.mutual()
        await self.assertRefused(clientContext(self.ca, self.otherCA.client(), self.directory))

    async def test_client_certificate_from_a_client_ca_is_accepted(self) -> None:
        self.mutual()
        exchange = await self.fetch(clientContext(self.ca, self.ca.client(), self.directory))
        self.assertEqual(exchange.status, 200)

    async def test_refused_in_tls12_too(self) -> None:
        self.mutual()
        await self.assertRefused(clientContext(self.ca, maximum=ssl.TLSVersion.TLSv1_2))
        exchange = await self.fetch(
            clientContext(self.ca, self.ca.client(), self.directory, maximum=ssl.TLSVersion.TLSv1_2)
        )
        self.assertEqual(exchange.status, 200)

    async def test_verify_client_cert_if_given(self) -> None:
        self.mutual(clientauth="verify-client-cert-if-given")
        self.assertEqual((await self.fetch(clientContext(self.ca))).status, 200)
        await self.assertRefused(clientContext(self.ca, self.otherCA.client(), self.directory))

    async def test_require_any_client_cert(self) -> None:
        self.mutual(clientauth="require-any-client-cert")
        await self.assertRefused(clientContext(self.ca))
        exchange = await self.fetch(clientContext(self.ca, self.otherCA.client(), self.directory))
        self.assertEqual(exchange.status, 200)


class VersionAndCipherTests(TLSTestCase):
    async def test_minimum_tls13_refuses_a_tls12_only_client(self) -> None:
        self.start({**self.writeServer(self.ca.server()), "minimumtls": "tls1.3"})
        await self.assertRefused(clientContext(self.ca, maximum=ssl.TLSVersion.TLSv1_2))
        exchange = await self.fetch(clientContext(self.ca))
        self.assertEqual((exchange.status, exchange.version), (200, "TLSv1.3"))

    async def test_minimum_tls10_with_cbc_suites_serves_a_tls10_client(self) -> None:
        self.start(
            {
                **self.writeServer(self.ca.server(keyKind="rsa")),
                "minimumtls": "tls1.0",
                "ciphersuites": [
                    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
                    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                ],
            }
        )
        context = clientContext(self.ca, ciphers="ECDHE-RSA-AES128-SHA:@SECLEVEL=0")
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1
        exchange = await self.fetch(context)
        self.assertEqual((exchange.status, exchange.version), (200, "TLSv1"))

    async def test_default_minimum_refuses_a_tls10_client(self) -> None:
        self.start(
            {
                **self.writeServer(self.ca.server(keyKind="rsa")),
                "ciphersuites": [
                    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
                    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                ],
            }
        )
        context = clientContext(self.ca, ciphers="ECDHE-RSA-AES128-SHA:@SECLEVEL=0")
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1
        await self.assertRefused(context)

    async def test_default_minimum_accepts_tls12(self) -> None:
        self.start(self.writeServer(self.ca.server()))
        exchange = await self.fetch(clientContext(self.ca, maximum=ssl.TLSVersion.TLSv1_2))
        self.assertEqual((exchange.status, exchange.version), (200, "TLSv1.2"))

    async def test_ciphersuites_limit_tls12_ciphers(self) -> None:
        self.start(
            {
                **self.writeServer(self.ca.server(keyKind="rsa")),
                "ciphersuites": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"],
            }
        )
        exchange = await self.fetch(clientContext(self.ca, maximum=ssl.TLSVersion.TLSv1_2))
        self.assertEqual((exchange.status, exchange.cipher), (200, "ECDHE-RSA-AES128-GCM-SHA256"))
        await self.assertRefused(
            clientContext(self.ca, maximum=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-RSA-AES256-GCM-SHA384")
        )

    async def test_default_ciphersuites_allow_what_the_limited_list_refused(self) -> None:
        # The control for the test above: the refusal there comes from the configured list.
        self.start(self.writeServer(self.ca.server(keyKind="rsa")))
        exchange = await self.fetch(
            clientContext(self.ca, maximum=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-RSA-AES256-GCM-SHA384")
        )
        self.assertEqual((exchange.status, exchange.cipher), (200, "ECDHE-RSA-AES256-GCM-SHA384"))

    async def test_default_ciphersuites_refuse_cbc(self) -> None:
        self.start(self.writeServer(self.ca.server(keyKind="rsa")))
        await self.assertRefused(
            clientContext(self.ca, maximum=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-RSA-AES128-SHA")
        )

    async def test_only_tls13_suites_listed_leaves_only_tls13(self) -> None:
        self.start({**self.writeServer(self.ca.server()), "ciphersuites": ["TLS_AES_128_GCM_SHA256"]})
        await self.assertRefused(clientContext(self.ca, maximum=ssl.TLSVersion.TLSv1_2))
        self.assertEqual((await self.fetch(clientContext(self.ca))).version, "TLSv1.3")


class ReloadTests(TLSTestCase):
    async def test_sighup_serves_a_new_certificate_to_new_connections_only(self) -> None:
        first, second = self.ca.server("first"), self.ca.server("second")
        tls = self.writeServer(first)
        service = self.start(tls)
        port = service.getServiceNamed("http")._waitingForPort.result
        context = clientContext(self.ca)
        old = _Connection(self.address, context)
        self.addCleanup(old.close)
        before = await deferToThread(Exchange, old)
        self.assertEqual(before.peer, fingerprint(first.certificate))

        second.write(self.directory, "server")
        reloaded: Deferred = Deferred()
        # Callbacks run in order, each after the one before finished: this one runs after TLS's.
        self.addCleanup(onReload(lambda: reloaded.callback(None)))
        os.kill(os.getpid(), signal.SIGHUP)
        await reloaded

        fresh = await self.fetch(context)
        self.assertEqual((fresh.status, fresh.peer), (200, fingerprint(second.certificate)))
        # The connection opened before the reload still works, with the certificate it began with.
        still = await deferToThread(Exchange, old)
        self.assertEqual((still.status, still.peer), (200, fingerprint(first.certificate)))
        # The listening port is the one opened at start-up, still open.
        self.assertIs(service.getServiceNamed("http")._waitingForPort.result, port)
        self.assertTrue(port.connected)

    async def test_broken_files_on_reload_keep_the_old_certificate(self) -> None:
        server = self.ca.server()
        tls = self.writeServer(server)
        self.start(tls)
        Path(tls["key"]).write_bytes(keyPEM(self.ca.server().key))  # a key for another certificate
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        await reloader.reload()
        errors = [formatEvent(e) for e in events if e.get("log_level") == LogLevel.error]
        self.assertEqual(len(errors), 1, errors)
        self.assertIn("http.tls.key", errors[0])
        exchange = await self.fetch(clientContext(self.ca))
        self.assertEqual((exchange.status, exchange.peer), (200, fingerprint(server.certificate)))

    async def test_reload_reads_new_client_cas(self) -> None:
        caPath = self.otherCA.writeCertificate(self.directory / "clients-ca.crt")
        self.start({**self.writeServer(self.ca.server()), "clientcas": [str(caPath)]})
        client = self.ca.client()
        await self.assertRefused(clientContext(self.ca, client, self.directory))
        self.ca.writeCertificate(caPath)
        await reloader.reload()
        self.assertEqual((await self.fetch(clientContext(self.ca, client, self.directory))).status, 200)


class ReloaderTests(unittest.TestCase):
    async def test_callbacks_run_in_order_each_after_the_previous(self) -> None:
        reloader, seen = Reloader(), []
        gate: Deferred = Deferred()

        def first() -> Deferred:
            seen.append("first started")
            return gate

        reloader.onReload(first)
        reloader.onReload(lambda: seen.append("second"))
        done = reloader.reload()
        self.assertEqual(seen, ["first started"])
        gate.callback(None)
        await done
        self.assertEqual(seen, ["first started", "second"])

    async def test_a_failing_callback_is_logged_and_the_rest_run(self) -> None:
        reloader, seen = Reloader(), []

        def broken() -> None:
            raise RuntimeError("broken reload")

        reloader.onReload(broken)
        reloader.onReload(lambda: seen.append("ran"))
        await reloader.reload()
        self.assertEqual(seen, ["ran"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    async def test_removed_callbacks_do_not_run(self) -> None:
        reloader, seen = Reloader(), []
        remove = reloader.onReload(lambda: seen.append("ran"))
        remove()
        await reloader.reload()
        self.assertEqual(seen, [])

    async def test_sighup_service_reloads_and_restores_the_previous_handler(self) -> None:
        reloader, reloaded = Reloader(), Deferred()
        reloader.onReload(lambda: reloaded.callback("reloaded"))
        previous = signal.getsignal(signal.SIGHUP)
        service = SIGHUPService(reactor, reloader)
        service.startService()
        self.addCleanup(lambda: service.running and service.stopService())
        os.kill(os.getpid(), signal.SIGHUP)
        self.assertEqual(await reloaded, "reloaded")
        service.stopService()
        self.assertEqual(signal.getsignal(signal.SIGHUP), previous)


class ConfigTests(unittest.TestCase):
    """Bad http.tls settings stop start-up with one line naming the key."""

    def setUp(self) -> None:
        self.directory = Path(self.mktemp()).resolve()
        self.directory.mkdir(parents=True)
        self.ca = Authority()
        certificatePath, keyPath = self.ca.server().write(self.directory, "server")
        self.tls = {"certificate": str(certificatePath), "key": str(keyPath)}

    def build(self, tls: object) -> Any:
        document = {
            "version": 0.1,
            "storage": {"inmemory": {}},
            "http": {"addr": f"127.0.0.1:{freePort()}", "tls": tls},
        }
        return makeService(parseDocument(document), reactor)

    def assertRefused(self, tls: object, keyPath: str, *fragments: str) -> ConfigError:
        error = self.assertRaises(ConfigError, self.build, tls)
        self.assertTrue(str(error).startswith(keyPath + ": "), str(error))
        self.assertNotIn("\n", str(error))
        for fragment in fragments:
            self.assertIn(fragment, str(error))
        return error

    def test_good_files_build(self) -> None:
        self.assertIsNotNone(self.build(self.tls).getServiceNamed("http"))

    def test_empty_section_is_plain_http(self) -> None:
        self.assertIsNone(parseTLS(None))
        self.assertIsNone(parseTLS({"certificate": "", "key": ""}))
        self.assertIsNone(parseTLS({"letsencrypt": {}}))

    def test_missing_files(self) -> None:
        missing = str(self.directory / "nope.pem")
        self.assertRefused({**self.tls, "certificate": missing}, "http.tls.certificate", missing)
        self.assertRefused({**self.tls, "key": missing}, "http.tls.key", missing)
        self.assertRefused(
            {**self.tls, "clientcas": [self.tls["certificate"], missing]}, "http.tls.clientcas.1"
        )

    def test_unreadable_file(self) -> None:
        self.assertRefused({**self.tls, "key": str(self.directory)}, "http.tls.key", "cannot read")

    def test_not_pem(self) -> None:
        garbage = self.directory / "garbage.pem"
        garbage.write_text("not a certificate\n")
        self.assertRefused(
            {**self.tls, "certificate": str(garbage)}, "http.tls.certificate", "no PEM certificate"
        )
        self.assertRefused({**self.tls, "key": str(garbage)}, "http.tls.key", "no PEM private key")
        self.assertRefused({**self.tls, "clientcas": [str(garbage)]}, "http.tls.clientcas.0")

    def test_key_of_another_certificate(self) -> None:
        other = self.directory / "other.key"
        other.write_bytes(keyPEM(self.ca.server().key))
        self.assertRefused({**self.tls, "key": str(other)}, "http.tls.key", "does not match")

    def test_encrypted_key(self) -> None:
        key = serialization.load_pem_private_key(Path(self.tls["key"]).read_bytes(), None)
        encrypted = self.directory / "encrypted.key"
        encrypted.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            )
        )
        self.assertRefused({**self.tls, "key": str(encrypted)}, "http.tls.key", "encrypted")

    def test_certificate_and_key_are_both_required(self) -> None:
        self.assertRefused({"certificate": self.tls["certificate"]}, "http.tls.key", "required")
        self.assertRefused({"key": self.tls["key"]}, "http.tls.certificate", "required")
        self.assertRefused({"clientcas": [self.tls["certificate"]]}, "http.tls.certificate", "required")

    def test_bad_values(self) -> None:
        self.assertRefused({**self.tls, "minimumtls": "tls1.4"}, "http.tls.minimumtls", "tls1.3")
        self.assertRefused({**self.tls, "clientauth": "maybe"}, "http.tls.clientauth")
        self.assertRefused({**self.tls, "clientcas": {"a": 1}}, "http.tls.clientcas", "list")
        self.assertRefused({**self.tls, "color": "blue"}, "http.tls.color", "unknown key")
        self.assertRefused({**self.tls, "ciphersuites": []}, "http.tls.ciphersuites")
        self.assertRefused({**self.tls, "ciphersuites": "TLS_AES_128_GCM_SHA256"}, "http.tls.ciphersuites")

    def test_unknown_cipher_suite_names_its_entry(self) -> None:
        suites = ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_999_GCM_SHA256"]
        self.assertRefused(
            {**self.tls, "ciphersuites": suites},
            "http.tls.ciphersuites.1",
            "TLS_ECDHE_RSA_WITH_AES_999_GCM_SHA256",
        )

    def test_every_available_default_suite_is_known(self) -> None:
        self.assertEqual(
            parseTLS({**self.tls, "ciphersuites": list(DEFAULT_SUITES)}).cipherSuites, DEFAULT_SUITES
        )

    def test_letsencrypt_is_refused_with_the_reason(self) -> None:
        self.assertRefused(
            {"letsencrypt": {"cachefile": "/var/cache/le", "email": "ops@example.com"}},
            "http.tls.letsencrypt",
            "network",
        )

    def test_expired_certificate_starts_with_a_warning(self) -> None:
        now = datetime.datetime.now(datetime.UTC)
        expired = self.ca.issue(
            "localhost",
            server=True,
            notBefore=now - datetime.timedelta(days=2),
            notAfter=now - datetime.timedelta(hours=1),
        )
        certificatePath, keyPath = expired.write(self.directory, "expired")
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.build({"certificate": str(certificatePath), "key": str(keyPath)})
        self.assertTrue(any("expired" in event.get("log_format", "") for event in events))


class CertificateHelperTests(unittest.TestCase):
    def test_intermediate_chain_verifies_to_the_root(self) -> None:
        root = Authority()
        server = root.intermediate().server()
        chain = [server.certificate, *server.intermediates]
        for child, parent in zip(chain, [*chain[1:], root.certificate], strict=True):
            child.verify_directly_issued_by(parent)
        self.assertIsInstance(server.certificate, x509.Certificate)
