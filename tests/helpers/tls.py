"""Throwaway certificates for the TLS tests, made with the ``openssl`` command: a CA, a server
certificate for ``localhost`` / ``127.0.0.1`` and a client certificate signed by it, as PEM files
and PKCS#12 keystores (what Kafka's Java client and broker read)."""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

KEYSTORE_PASSWORD = "iomt-ad-test-keystore"  # of throwaway keystores in a temporary directory


@dataclass(frozen=True)
class Pki:
    ca_cert: Path          # PEM
    server_cert: Path      # PEM, SAN localhost and 127.0.0.1
    server_key: Path       # PEM, unencrypted
    server_p12: Path       # PKCS#12 (password KEYSTORE_PASSWORD)
    client_cert: Path
    client_key: Path
    client_p12: Path


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise FileNotFoundError("the TLS tests need the openssl command: apt-get install openssl")
    subprocess.run([openssl, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _signed(directory: Path, name: str, subject: str, extensions: str) -> tuple[Path, Path, Path]:
    key, csr, cert, p12 = (directory / f"{name}{suffix}" for suffix in (".key", ".csr", ".pem", ".p12"))
    ext = directory / f"{name}.ext"
    ext.write_text(extensions)
    _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-subj", subject,
             "-out", str(csr), cwd=directory)
    _openssl("x509", "-req", "-in", str(csr), "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-sha256", "-extfile", str(ext), "-out", str(cert), cwd=directory)
    _openssl("pkcs12", "-export", "-in", str(cert), "-inkey", str(key), "-certfile", "ca.pem", "-name", name,
             "-passout", f"pass:{KEYSTORE_PASSWORD}", "-out", str(p12), cwd=directory)
    return cert, key, p12


def make_pki(directory: Path, name: str = "IoMT-AD test CA") -> Pki:
    """A CA and two certificates it signed, in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "2", "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    server = _signed(directory, "server", "/CN=localhost",
                     "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    client = _signed(directory, "client", "/CN=iomt-ad-client", "extendedKeyUsage=clientAuth\n")
    return Pki(ca_cert=directory / "ca.pem", server_cert=server[0], server_key=server[1], server_p12=server[2],
               client_cert=client[0], client_key=client[1], client_p12=client[2])
