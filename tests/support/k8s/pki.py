"""Certificates and keys of the test control plane, made fresh per cluster with `cryptography`.

A real cluster's trust layout, in small: one CA that signs the API server's serving
certificate and every client certificate (the API server's `--client-ca-file`), and a
separate key pair for service-account tokens. Client certificates carry the identity RBAC
sees: CN is the user name, O the groups (`system:masters` for the admin). Users are minted on
demand, so a test can sign in as any person without restarting the API server.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=2)


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: Path, data: bytes, private: bool = False) -> Path:
    path.write_bytes(data)
    if private:
        path.chmod(0o600)
    return path


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


class ClusterPKI:
    """The CA and keys of one cluster, written under `directory`."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aksrun-test-ca")])
        now = dt.datetime.now(dt.UTC)
        self._ca_cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self._ca_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(self._ca_key, hashes.SHA256())
        )
        self.ca_cert = _write(self.dir / "ca.crt",
                              self._ca_cert.public_bytes(serialization.Encoding.PEM))
        # Service-account tokens are signed with RSA (RS256), as kube-apiserver expects.
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.sa_key = _write(self.dir / "sa.key", _pem_key(sa_key), private=True)
        self.sa_pub = _write(self.dir / "sa.pub", sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

    def serving(self, name: str, dns: list[str], ips: list[str]) -> CertPair:
        """A server certificate for `dns` names and `ips`, signed by the cluster CA."""
        alt = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i))
                                                for i in ips]
        return self._issue(name, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]),
                           ExtendedKeyUsageOID.SERVER_AUTH, x509.SubjectAlternativeName(alt))

    def client(self, user: str, groups: tuple[str, ...] = ()) -> CertPair:
        """A client certificate: the API server authenticates it as `user` in `groups`."""
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, user))
        file_name = user.replace(":", "_")
        return self._issue(file_name, x509.Name(attrs), ExtendedKeyUsageOID.CLIENT_AUTH)

    def _issue(self, file_name: str, subject: x509.Name, usage: x509.ObjectIdentifier,
               alt: x509.SubjectAlternativeName | None = None) -> CertPair:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(self._ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if alt is not None:
            builder = builder.add_extension(alt, critical=False)
        cert = builder.sign(self._ca_key, hashes.SHA256())
        return CertPair(
            _write(self.dir / f"{file_name}.crt", cert.public_bytes(serialization.Encoding.PEM)),
            _write(self.dir / f"{file_name}.key", _pem_key(key), private=True),
        )
