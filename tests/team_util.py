"""Real team servers for tests: a private CA and a server certificate made for the test, a
``clarity serve --team`` process over TLS, users made with ``clarity team user add``, and the
records a daemon would send (docs/team.md)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import math
import random
import shutil
import ssl
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from clarity.models import Memory, content_hash

from .daemon_util import Daemon, run_clarity

MODEL = "all-MiniLM-L6-v2@sha256:test"
DIMENSION = 384


def make_tls(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate chain, server key): a private CA signs a certificate
    for ``host``, as a team would run one (team.ca_file on the daemons). ``cryptography`` when
    installed, else the ``openssl`` command."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, cert, key = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    try:
        _tls_with_cryptography(ca, cert, key, host)
    except ImportError:
        _tls_with_openssl(directory, ca, cert, key, host)
    return ca, cert, key


def _tls_with_cryptography(ca_path: Path, cert_path: Path, key_path: Path, host: str) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "clarity test team CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


def _tls_with_openssl(directory: Path, ca: Path, cert: Path, key: Path, host: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("making a test certificate needs the cryptography package or the openssl command")
    ca_key, csr, ext = directory / "ca.key", directory / "server.csr", directory / "server.ext"
    ext.write_text(
        f"subjectAltName=IP:{host}\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n"
    )
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    signed = ["-out", str(cert), "-days", "2", "-extfile", str(ext)]
    for args in (
        [
            "req",
            "-x509",
            *curve,
            "-keyout",
            str(ca_key),
            "-out",
            str(ca),
            "-days",
            "2",
            "-subj",
            "/CN=test CA",
        ],
        ["req", *curve, "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={host}"],
        ["x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", *signed],
    ):
        subprocess.run([openssl, *args], check=True, capture_output=True)


class TeamServer(Daemon):
    """``clarity serve --team`` on loopback over TLS, with its own storage root and config."""

    def __init__(self, root: Path, port: int, tls_dir: Path, env: dict[str, str] | None = None) -> None:
        self.ca, cert, key = make_tls(tls_dir)
        team_env = {"CLARITY_TEAM__TLS_CERT": str(cert), "CLARITY_TEAM__TLS_KEY": str(key), **(env or {})}
        args = ["--team", "--host", "127.0.0.1", "--port", str(port), "--storage-root", str(root)]
        super().__init__(root, port, env=team_env, args=args)
        self.url = f"https://127.0.0.1:{port}"

    def wait_healthy(self, timeout: float = 60) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"team server exited {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", verify=self.trust(), timeout=1).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"team server not healthy after {timeout}s:\n{self.log()}")

    def add_user(self, name: str, role: str = "write") -> str:
        """``clarity team user add`` as an admin runs it on the host; the token it printed."""
        done = run_clarity(
            self.env(), "team", "user", "add", name, "--role", role, "--storage-root", str(self.root)
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def client(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=f"{self.url}/team/v1", verify=self.trust(), headers=headers, timeout=60)

    def trust(self) -> ssl.SSLContext:
        """A client's TLS context that trusts the test CA (team.ca_file on a daemon)."""
        return ssl.create_default_context(cafile=str(self.ca))

    def audit(self) -> list[dict[str, Any]]:
        path = self.root / "app-data" / "team" / "audit.jsonl"
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def vector(seed: int, dimension: int = DIMENSION) -> list[float]:
    rng = random.Random(seed)
    raw = [rng.gauss(0, 1) for _ in range(dimension)]
    norm = math.sqrt(sum(x * x for x in raw))
    return [x / norm for x in raw]


def memory(content: str, project: str, **fields: Any) -> dict[str, Any]:
    """A shared project memory as a daemon's outbox sends it (JSON of ``Memory``)."""
    now = dt.datetime.now(dt.UTC)
    record = Memory(
        id=fields.pop("id", None) or str(uuid.uuid4()),
        content=content,
        memory_type=fields.pop("memory_type", "fact"),
        scope=project,
        created_at=now,
        updated_at=now,
        content_hash=content_hash(content),
        shared=fields.pop("shared", True),
        **fields,
    )
    return json.loads(record.model_dump_json())


def put(record: dict[str, Any], seed: int = 0, model: str = MODEL, **extra: Any) -> dict[str, Any]:
    op = {"op_id": str(uuid.uuid4()), "kind": "put", "memory": record, "vector": vector(seed), "model": model}
    return {**op, **extra}


def delete(memory_id: str, project: str) -> dict[str, Any]:
    return {"op_id": str(uuid.uuid4()), "kind": "delete", "id": memory_id, "project": project}
