"""Certificates for the test control plane, made with the `openssl` command line tool.

Why openssl and not the `cryptography` package: openssl is on every Debian image already, so the
cluster tier adds no Python dependency. Everything here is loopback-only and throw-away: keys are
unencrypted and live in the control plane's temp dir.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {proc.stderr.strip()}")


def make_ca(pki: Path, name: str, common_name: str) -> CertPair:
    pki.mkdir(parents=True, exist_ok=True)
    pair = CertPair(pki / f"{name}.crt", pki / f"{name}.key")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        str(pair.key),
        "-out",
        str(pair.cert),
        "-days",
        "30",
        "-subj",
        f"/CN={common_name}",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        cwd=pki,
    )
    return pair


def make_cert(
    pki: Path,
    ca: CertPair,
    name: str,
    *,
    common_name: str,
    organizations: tuple[str, ...] = (),
    sans: tuple[str, ...] = (),
    server: bool = False,
) -> CertPair:
    """Issue a leaf certificate signed by `ca`; client usage always, server usage if asked."""
    pair = CertPair(pki / f"{name}.crt", pki / f"{name}.key")
    csr = pki / f"{name}.csr"
    subject = "".join(f"/O={o}" for o in organizations) + f"/CN={common_name}"
    _openssl(
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        str(pair.key),
        "-out",
        str(csr),
        "-subj",
        subject,
        cwd=pki,
    )
    usages = "serverAuth,clientAuth" if server else "clientAuth"
    ext = pki / f"{name}.ext"
    lines = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={usages}",
    ]
    if sans:
        lines.append("subjectAltName=" + ",".join(sans))
    ext.write_text("\n".join(lines) + "\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca.cert),
        "-CAkey",
        str(ca.key),
        "-CAcreateserial",
        "-out",
        str(pair.cert),
        "-days",
        "30",
        "-extfile",
        str(ext),
        cwd=pki,
    )
    return pair


def make_rsa_keypair(pki: Path, name: str) -> tuple[Path, Path]:
    """Service-account token signing key (RSA: what the apiserver's JWT signer expects)."""
    key, pub = pki / f"{name}.key", pki / f"{name}.pub"
    _openssl(
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        str(key),
        cwd=pki,
    )
    _openssl("pkey", "-in", str(key), "-pubout", "-out", str(pub), cwd=pki)
    return key, pub
