"""The relay's STARTTLS certificate: the configured one, or a self-signed one made once.

With ``MSGGATE_SMTP_TLS_CERT`` and ``MSGGATE_SMTP_TLS_KEY`` (PEM files) the relay presents that
certificate. Without them it generates a self-signed RSA certificate for its host name into
``<data dir>/smtp-tls/`` on the first start and reuses it after, saying so in the log: clients
then have to be told not to verify it (or to trust that file).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from gateway.config import ConfigError, Settings

log = logging.getLogger(__name__)

TLS_DIR = "smtp-tls"
VALID_DAYS = 3650

# One key per process is enough for every self-signed certificate it writes (tests start many
# gateways, each with its own data folder; RSA key generation is the slow part).
_generated: dict[str, tuple[bytes, bytes]] = {}


def _self_signed(hostname: str) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for ``hostname`` and localhost, valid for ten years."""
    if hostname in _generated:
        return _generated[hostname]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname[:64])])
    now = dt.datetime.now(dt.UTC)
    hosts = dict.fromkeys([hostname, "localhost"])
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in hosts]
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pems = (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    _generated[hostname] = pems
    return pems


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def certificate_files(settings: Settings, hostname: str) -> tuple[str, str, bool]:
    """(certificate path, key path, whether it is our self-signed one); may generate it."""
    if settings.smtp_tls_cert or settings.smtp_tls_key:
        if not (settings.smtp_tls_cert and settings.smtp_tls_key):
            missing = "MSGGATE_SMTP_TLS_KEY" if settings.smtp_tls_cert else "MSGGATE_SMTP_TLS_CERT"
            raise ConfigError(f"{missing} is required too: the certificate and key go together")
        return settings.smtp_tls_cert, settings.smtp_tls_key, False
    folder = settings.data_path / TLS_DIR
    cert, key = folder / "cert.pem", folder / "key.pem"
    if not (cert.exists() and key.exists()):
        folder.mkdir(parents=True, exist_ok=True)
        cert_pem, key_pem = _self_signed(hostname)
        _write(key, key_pem, 0o600)
        _write(cert, cert_pem, 0o644)
        log.warning(
            "SMTP relay: generated a self-signed STARTTLS certificate for %s in %s;"
            " set MSGGATE_SMTP_TLS_CERT and MSGGATE_SMTP_TLS_KEY to use a real one",
            hostname,
            folder,
        )
    else:
        log.info("SMTP relay: STARTTLS with the self-signed certificate in %s", folder)
    return str(cert), str(key), True


def server_context(settings: Settings, hostname: str) -> ssl.SSLContext:
    """The server-side TLS context for STARTTLS (TLS 1.2 or later); blocking: run in a thread."""
    cert, key, _ = certificate_files(settings, hostname)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"MSGGATE_SMTP_TLS_CERT / MSGGATE_SMTP_TLS_KEY ({cert}, {key}): cannot load: {exc}"
        ) from None
    return context
