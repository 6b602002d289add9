"""
Serving the registry over TLS: the OpenSSL context built from C{http.tls}, and a context
factory that swaps in a freshly read one on reload (SIGHUP) while the listening socket and
open connections stay as they are.

This is server-side TLS with pyOpenSSL. service-identity checks a server's name on the
client side, so it has no part here; the tests' clients use it (through Twisted's
C{optionsForClientTLS}) to verify the registry's certificate.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web.server import Site
from zope.interface import implementer

from registryd.config.errors import ConfigError
from registryd.config.tls import KEY_PATH, TLSConfig

# OpenSSL does not resume a session on a context that verifies peers without an id context.
_SESSION_ID_CONTEXT = b"registryd"
_HTTP11 = b"http/1.1"

_VERIFY_MODES = {
    "request-client-cert": SSL.VERIFY_PEER,
    "require-any-client-cert": SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
    "verify-client-cert-if-given": SSL.VERIFY_PEER,
    "require-and-verify-client-cert": SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
}
# Modes that ask for a certificate but, as Go's do, accept one no client CA signed.
_UNVERIFIED_MODES = ("request-client-cert", "require-any-client-cert")


def _read(path: str, keyPath: Sequence[str]) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}", keyPath) from None


def _certificates(path: str, keyPath: Sequence[str]) -> list[x509.Certificate]:
    """Every certificate in a PEM file, in file order; ConfigError naming keyPath if there is none."""
    data = _read(path, keyPath)
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigError(f"{path} holds no PEM certificate", keyPath) from None


def _privateKey(path: str, keyPath: Sequence[str]) -> Any:
    data = _read(path, keyPath)
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(
            f"{path} is encrypted; registryd needs the key without a passphrase", keyPath
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"{path} holds no PEM private key (RSA or EC)", keyPath) from None


def _publicKey(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _selectHTTP11(connection: SSL.Connection, offered: list[bytes]) -> Any:
    """ALPN: speak HTTP/1.1 (registryd does not serve HTTP/2)."""
    return _HTTP11 if _HTTP11 in offered else SSL.NO_OVERLAPPING_PROTOCOLS


def _acceptAny(*args: Any) -> bool:
    return True


def buildContext(config: TLSConfig, keyPath: Sequence[str] = KEY_PATH) -> SSL.Context:
    """
    Read the certificate, key and client CAs and build the server's OpenSSL context.

    @raise ConfigError: a file is missing, unreadable, not PEM, or the key does not match
        the certificate; the error names the key (e.g. C{http.tls.key}).
    """
    return _build(config, keyPath)[0]


def _build(config: TLSConfig, keyPath: Sequence[str] = KEY_PATH) -> tuple[SSL.Context, x509.Certificate]:
    """L{buildContext}, and the leaf certificate it serves."""
    certificatePath, keyFilePath = [*keyPath, "certificate"], [*keyPath, "key"]
    chain = _certificates(config.certificate, certificatePath)
    privateKey = _privateKey(config.key, keyFilePath)

    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE | SSL.OP_NO_RENEGOTIATION)
    context.set_min_proto_version(config.minimumVersion)
    ciphers = config.openSSLCiphers()
    if not ciphers:
        # Only TLS 1.3 suites were listed: no TLS 1.2 suite is left, as with Go.
        context.set_min_proto_version(SSL.TLS1_3_VERSION)
    else:
        if config.minimumVersion < SSL.TLS1_2_VERSION:
            # OpenSSL 3 refuses TLS 1.0 and 1.1 above security level 0; the operator asked for them.
            ciphers += ":@SECLEVEL=0"
        context.set_cipher_list(ciphers.encode("ascii"))

    try:
        context.use_certificate(chain[0])
        for intermediate in chain[1:]:
            context.add_extra_chain_cert(intermediate)
    except SSL.Error as e:
        raise ConfigError(f"{config.certificate} cannot be served: {_reason(e)}", certificatePath) from None
    if _publicKey(privateKey.public_key()) != _publicKey(chain[0].public_key()):
        raise ConfigError(f"{config.key} does not match the certificate in {config.certificate}", keyFilePath)
    try:
        context.use_privatekey(privateKey)
    except (SSL.Error, TypeError) as e:
        raise ConfigError(f"{config.key} cannot be used: {_reason(e)}", keyFilePath) from None
    try:
        context.check_privatekey()
    except SSL.Error:
        raise ConfigError(
            f"{config.key} does not match the certificate in {config.certificate}", keyFilePath
        ) from None

    if config.clientCAs:
        store = context.get_cert_store()
        assert store is not None
        for index, path in enumerate(config.clientCAs):
            for authority in _certificates(path, [*keyPath, "clientcas", str(index)]):
                store.add_cert(crypto.X509.from_cryptography(authority))
                context.add_client_ca(authority)
        verify = _acceptAny if config.clientAuth in _UNVERIFIED_MODES else None
        context.set_verify(_VERIFY_MODES[config.clientAuth], verify)
    context.set_session_id(_SESSION_ID_CONTEXT)
    context.set_alpn_select_callback(_selectHTTP11)
    return context, chain[0]


def _reason(error: Exception) -> str:
    """OpenSSL's reason strings from an error, for a one-line message."""
    reasons = [entry[-1] for entry in error.args[0] if isinstance(entry, tuple)] if error.args else []
    return "; ".join(reasons) or str(error)


def _describe(leaf: x509.Certificate) -> str:
    """A certificate's subject and expiry, for logs."""
    return f"{leaf.subject.rfc4514_string()} (expires {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC)"


@implementer(IOpenSSLServerConnectionCreator)
class ReloadingContextFactory:
    """
    Hands each new TLS connection the current context; L{reload} reads the files again
    and swaps the context, so connections accepted afterwards get the new certificate.
    Connections already open keep the context they started with.
    """

    log = Logger()

    def __init__(self, config: TLSConfig, reactor: Any = None) -> None:
        if reactor is None:
            from twisted.internet import reactor as globalReactor

            reactor = globalReactor
        self.config = config
        self._reactor = reactor
        self._context, leaf = _build(config)
        self._warnIfExpired(leaf)

    def getContext(self) -> SSL.Context:
        """The context new connections are given now."""
        return self._context

    def serverConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        """A server-side connection object for one accepted connection."""
        return SSL.Connection(self._context, None)

    def reload(self) -> Deferred:
        """
        Re-read the certificate, key and client CAs (in a thread: file reads and key parsing).

        @return: a Deferred firing True once new connections use them, or False when the
            new files are unusable: the error is logged and the previous context kept.
        """
        d = deferToThreadPool(self._reactor, self._reactor.getThreadPool(), _build, self.config)
        d.addCallbacks(self._swap, self._keep)
        return d

    def _swap(self, built: tuple[SSL.Context, x509.Certificate]) -> bool:
        self._context, leaf = built
        self.log.info(
            "TLS: reloaded {path}: {certificate}", path=self.config.certificate, certificate=_describe(leaf)
        )
        self._warnIfExpired(leaf)
        return True

    def _keep(self, failure: Any) -> bool:
        if failure.check(ConfigError):
            self.log.error(
                "TLS reload failed, still serving the previous certificate: {error}", error=str(failure.value)
            )
        else:
            self.log.failure("TLS reload failed, still serving the previous certificate", failure)
        return False

    def _warnIfExpired(self, leaf: x509.Certificate) -> None:
        expires = leaf.not_valid_after_utc
        if expires < datetime.datetime.now(datetime.UTC):
            self.log.warn(
                "TLS: the certificate in {path} expired on {expires}; clients will refuse it",
                path=self.config.certificate,
                expires=expires.isoformat(),
            )


def tlsFactory(contextFactory: ReloadingContextFactory, site: Site) -> TLSMemoryBIOFactory:
    """Wrap the site so every connection speaks TLS first; works over tcp, tcp6 and unix endpoints."""
    return TLSMemoryBIOFactory(contextFactory, False, site)


__all__ = ["ReloadingContextFactory", "buildContext", "tlsFactory"]
