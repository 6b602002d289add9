"""
Certificates for TLS tests, made on the spot with C{cryptography}: a root CA, intermediates,
server certificates for loopback (127.0.0.1, ::1, localhost) and client certificates.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Names every test server certificate is valid for.
LOOPBACK_NAMES = ("localhost",)
LOOPBACK_ADDRESSES = ("127.0.0.1", "::1")


def newKey(kind: str = "ec") -> Any:
    """A fresh private key: C{ec} (P-256, fast) or C{rsa} (2048 bits)."""
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unknown key kind {kind!r}")


def _name(commonName: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "registryd tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, commonName),
        ]
    )


def keyPEM(key: Any) -> bytes:
    """A private key as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def certificatePEM(*certificates: x509.Certificate) -> bytes:
    """Certificates as concatenated PEM, in the order given."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


@dataclass
class Issued:
    """A certificate, its key, and the intermediates between it and the root (nearest first)."""

    certificate: x509.Certificate
    key: Any
    intermediates: list[x509.Certificate] = field(default_factory=list)

    def chainPEM(self) -> bytes:
        """The leaf followed by its intermediates, as a server's certificate file holds them."""
        return certificatePEM(self.certificate, *self.intermediates)

    def keyPEM(self) -> bytes:
        """The private key as PEM."""
        return keyPEM(self.key)

    def write(self, directory: Path, name: str, chain: bool = True) -> tuple[Path, Path]:
        """Write C{name}.crt (with the chain unless told not to) and C{name}.key; return their paths."""
        directory.mkdir(parents=True, exist_ok=True)
        certificatePath, keyPath = directory / f"{name}.crt", directory / f"{name}.key"
        certificatePath.write_bytes(self.chainPEM() if chain else certificatePEM(self.certificate))
        keyPath.write_bytes(self.keyPEM())
        return certificatePath, keyPath


class Authority:
    """A certificate authority that issues server, client and intermediate CA certificates."""

    def __init__(
        self,
        commonName: str = "registryd test CA",
        key: Any = None,
        parent: Authority | None = None,
    ) -> None:
        self.key = key if key is not None else newKey("ec")
        self.parent = parent
        if parent is None:
            self.certificate = self._build(
                _name(commonName), self.key.public_key(), self.key, _name(commonName), ca=True
            )
        else:
            self.certificate = parent.issue(commonName, ca=True, key=self.key).certificate

    @property
    def intermediates(self) -> list[x509.Certificate]:
        """The certificates between this authority and the root, this one first (empty for a root)."""
        if self.parent is None:
            return []
        return [self.certificate, *self.parent.intermediates]

    def pem(self) -> bytes:
        """This authority's own certificate as PEM (what a client trusts, for a root)."""
        return certificatePEM(self.certificate)

    def writeCertificate(self, path: Path) -> Path:
        """Write this authority's certificate to path."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.pem())
        return path

    def intermediate(self, commonName: str = "registryd test intermediate CA") -> Authority:
        """A CA signed by this one."""
        return Authority(commonName, parent=self)

    def _build(
        self,
        subject: x509.Name,
        publicKey: Any,
        signingKey: Any,
        issuer: x509.Name,
        ca: bool = False,
        server: bool = False,
        client: bool = False,
        names: tuple[str, ...] = (),
        addresses: tuple[str, ...] = (),
        notBefore: datetime.datetime | None = None,
        notAfter: datetime.datetime | None = None,
    ) -> x509.Certificate:
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(publicKey)
            .serial_number(x509.random_serial_number())
            .not_valid_before(notBefore or now - datetime.timedelta(hours=1))
            .not_valid_after(notAfter or now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(publicKey), critical=False)
        )
        if ca:
            usage = dict(key_cert_sign=True, crl_sign=True, digital_signature=False, key_encipherment=False)
        else:
            usage = dict(key_cert_sign=False, crl_sign=False, digital_signature=True, key_encipherment=True)
        builder = builder.add_extension(
            x509.KeyUsage(
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
                **usage,
            ),
            critical=True,
        )
        if issuer != subject:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signingKey.public_key()), critical=False
            )
        purposes = []
        if server:
            purposes.append(ExtendedKeyUsageOID.SERVER_AUTH)
        if client:
            purposes.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        if purposes:
            builder = builder.add_extension(x509.ExtendedKeyUsage(purposes), critical=False)
        alternatives: list[x509.GeneralName] = [x509.DNSName(name) for name in names]
        alternatives += [x509.IPAddress(ipaddress.ip_address(address)) for address in addresses]
        if alternatives:
            builder = builder.add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        return builder.sign(signingKey, hashes.SHA256())

    def issue(
        self,
        commonName: str,
        ca: bool = False,
        server: bool = False,
        client: bool = False,
        names: tuple[str, ...] = (),
        addresses: tuple[str, ...] = (),
        key: Any = None,
        keyKind: str = "ec",
        notBefore: datetime.datetime | None = None,
        notAfter: datetime.datetime | None = None,
    ) -> Issued:
        """A certificate for commonName signed by this authority, with a fresh key unless one is given."""
        key = key if key is not None else newKey(keyKind)
        certificate = self._build(
            _name(commonName),
            key.public_key(),
            self.key,
            self.certificate.subject,
            ca=ca,
            server=server,
            client=client,
            names=names,
            addresses=addresses,
            notBefore=notBefore,
            notAfter=notAfter,
        )
        return Issued(certificate, key, self.intermediates)

    def server(self, commonName: str = "localhost", keyKind: str = "ec") -> Issued:
        """A server certificate valid for localhost, 127.0.0.1 and ::1."""
        return self.issue(
            commonName, server=True, names=LOOPBACK_NAMES, addresses=LOOPBACK_ADDRESSES, keyKind=keyKind
        )

    def client(self, commonName: str = "registryd test client", keyKind: str = "ec") -> Issued:
        """A client certificate (for mutual TLS)."""
        return self.issue(commonName, client=True, keyKind=keyKind)


def fingerprint(certificate: x509.Certificate | bytes) -> bytes:
    """The SHA-256 fingerprint of a certificate (an object or its DER bytes), to tell certificates apart."""
    if isinstance(certificate, bytes):
        certificate = x509.load_der_x509_certificate(certificate)
    return certificate.fingerprint(hashes.SHA256())
