"""
The C{http.tls} section: certificate, key, client CAs, minimum version and cipher suites.

This module checks the section's shape and names; the files themselves are read when the
listener is built (L{registryd.web.tls}), which names the key of a file it cannot use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from OpenSSL import SSL

from registryd.config import parsers
from registryd.config.errors import ConfigError

KEY_PATH = ("http", "tls")

#: distribution's C{minimumtls} values and the protocol versions they name.
VERSIONS = {
    "tls1.0": SSL.TLS1_VERSION,
    "tls1.1": SSL.TLS1_1_VERSION,
    "tls1.2": SSL.TLS1_2_VERSION,
    "tls1.3": SSL.TLS1_3_VERSION,
}

#: distribution's C{clientauth} modes (Go's tls.ClientAuthType names).
CLIENT_AUTH_MODES = (
    "request-client-cert",
    "require-any-client-cert",
    "verify-client-cert-if-given",
    "require-and-verify-client-cert",
)

#: Go's names for the TLS 1.0-1.2 cipher suites distribution accepts, and OpenSSL's names for them.
TLS12_SUITES = {
    "TLS_RSA_WITH_RC4_128_SHA": "RC4-SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": "DES-CBC3-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA": "ECDHE-ECDSA-RC4-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA": "ECDHE-RSA-RC4-SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": "ECDHE-RSA-DES-CBC3-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    # Go's older spellings of the two ChaCha20 suites.
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
}

#: TLS 1.3 suites: accepted in the list as distribution does, but, as in Go, always enabled.
TLS13_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")

#: distribution's default suites when C{ciphersuites} is not set.
DEFAULT_SUITES = (
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_AES_128_GCM_SHA256",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_256_GCM_SHA384",
)

_LETSENCRYPT = (
    "Let's Encrypt needs registryd to reach an ACME server over the network, which it does not do; "
    "obtain the certificate with an ACME client (such as certbot), set http.tls.certificate and "
    "http.tls.key to its files and send SIGHUP after each renewal"
)


@dataclass(frozen=True)
class TLSConfig:
    """
    What the TLS listener serves. Paths are absolute (made so at parse time, so a later
    change of working directory does not change what a reload reads).
    """

    certificate: str
    key: str
    clientCAs: tuple[str, ...] = ()
    clientAuth: str = "require-and-verify-client-cert"
    minimumTLS: str = "tls1.2"
    cipherSuites: tuple[str, ...] = DEFAULT_SUITES

    @property
    def minimumVersion(self) -> int:
        """The OpenSSL protocol version constant C{minimumtls} names."""
        return VERSIONS[self.minimumTLS]

    def openSSLCiphers(self) -> str:
        """The OpenSSL cipher list for TLS 1.0-1.2 (empty when only TLS 1.3 suites were listed)."""
        names = [TLS12_SUITES[name] for name in self.cipherSuites if name in TLS12_SUITES]
        return ":".join(dict.fromkeys(names))


def _path(value: object, keyPath: parsers.KeyPath) -> str:
    text = parsers.string(value, keyPath)
    if not text:
        raise ConfigError("must name a file", keyPath)
    return os.path.abspath(text)


def _clientCAs(value: object, keyPath: parsers.KeyPath) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError(f"expected a list of CA files, got {parsers.typeName(value)}", keyPath)
    return tuple(_path(item, [*keyPath, str(index)]) for index, item in enumerate(value))


def _available(cipher: str) -> bool:
    """Whether the OpenSSL registryd runs on still implements cipher (RC4 and 3DES are gone from 3.x)."""
    try:
        SSL.Context(SSL.TLS_SERVER_METHOD).set_cipher_list(f"{cipher}:@SECLEVEL=0".encode("ascii"))
    except SSL.Error:
        return False
    return True


def _cipherSuites(value: object, keyPath: parsers.KeyPath) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"expected a list of cipher suite names, got {parsers.typeName(value)}", keyPath)
    suites = []
    for index, item in enumerate(value):
        itemPath = [*keyPath, str(index)]
        name = parsers.string(item, itemPath).strip().upper()
        if name in TLS13_SUITES:
            suites.append(name)
            continue
        if name not in TLS12_SUITES:
            raise ConfigError(
                f"unknown cipher suite {item!r} (use Go's names, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)",
                itemPath,
            )
        if not _available(TLS12_SUITES[name]):
            raise ConfigError(
                f"cipher suite {name} is not available in {SSL.SSLeay_version(0).decode()}", itemPath
            )
        suites.append(name)
    if not suites:
        raise ConfigError("lists no cipher suite (leave the key out for the defaults)", keyPath)
    return tuple(suites)


def _letsEncrypt(value: object, keyPath: parsers.KeyPath) -> None:
    section = parsers.mapping(value, keyPath)
    if any(item not in (None, "", [], {}) for item in section.values()):
        raise ConfigError(f"not supported: {_LETSENCRYPT}", keyPath)


def parseTLS(section: object, keyPath: parsers.KeyPath = KEY_PATH) -> TLSConfig | None:
    """
    Read C{http.tls}. None when the section is absent or sets nothing (plain HTTP, as
    distribution serves without a certificate).
    """
    values = parsers.mapping(section, keyPath)
    parsers.onlyKeys(
        values,
        ("certificate", "key", "clientcas", "clientauth", "minimumtls", "ciphersuites", "letsencrypt"),
        keyPath,
    )
    _letsEncrypt(values.get("letsencrypt"), [*keyPath, "letsencrypt"])
    if all(value in (None, "", [], {}) for value in values.values()):
        return None

    def optional(key: str, parse: Any, default: Any) -> Any:
        return parsers.optional(values, key, parse, default, keyPath)

    for key in ("certificate", "key"):
        if values.get(key) in (None, ""):
            raise ConfigError("required when http.tls is set (a PEM file)", [*keyPath, key])
    minimumTLS = optional("minimumtls", parsers.string, "tls1.2").strip().lower()
    if minimumTLS not in VERSIONS:
        raise ConfigError(
            f"unknown TLS version {values['minimumtls']!r} (one of {', '.join(VERSIONS)})",
            [*keyPath, "minimumtls"],
        )
    clientAuth = optional("clientauth", parsers.string, "require-and-verify-client-cert").strip().lower()
    if clientAuth not in CLIENT_AUTH_MODES:
        raise ConfigError(
            f"unknown mode {values['clientauth']!r} (one of {', '.join(CLIENT_AUTH_MODES)})",
            [*keyPath, "clientauth"],
        )
    return TLSConfig(
        certificate=_path(values["certificate"], [*keyPath, "certificate"]),
        key=_path(values["key"], [*keyPath, "key"]),
        clientCAs=optional("clientcas", _clientCAs, ()),
        clientAuth=clientAuth,
        minimumTLS=minimumTLS,
        cipherSuites=optional("ciphersuites", _cipherSuites, DEFAULT_SUITES),
    )
