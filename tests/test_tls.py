"""TLS and mutual TLS on loopback: certificates made here with `cryptography`, never committed."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import server
from matcher.auth import Authenticator, digest
from matcher.client import TLS, MatcherClient
from matcher.crypto import generate_key_file
from matcher.engine import Engine
from matcher.service import MatcherService
from matcher.store import Store
from matcher.thresholds import Thresholds

TOKEN = "tls-admin"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(k: ec.EllipticCurvePrivateKey) -> bytes:
    return k.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    ca: bool = False,
    san: str | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        b = b.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(san))]),
            critical=False,
        )
    return b.sign(issuer[1] if issuer else key, hashes.SHA256())


def _pem(c: x509.Certificate) -> bytes:
    return c.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | bytes]:
    d = tmp_path_factory.mktemp("pki")
    ca_key = _key()
    ca = _cert("amayesh test CA", ca_key, None, ca=True)
    srv_key = _key()
    srv = _cert("amayesh server", srv_key, (ca, ca_key), san="127.0.0.1")
    cli_key = _key()
    cli = _cert("station 1", cli_key, (ca, ca_key))
    rogue_key = _key()
    rogue = _cert("rogue", rogue_key, None)  # self-signed: not from our CA
    files = {
        "ca": _pem(ca),
        "srv_cert": _pem(srv),
        "srv_key": _pem_key(srv_key),
        "cli_cert": _pem(cli),
        "cli_key": _pem_key(cli_key),
        "rogue_cert": _pem(rogue),
        "rogue_key": _pem_key(rogue_key),
    }
    out: dict[str, Path | bytes] = {}
    for name, data in files.items():
        (d / name).write_bytes(data)
        out[name] = data
        out[name + "_path"] = d / name
    return out


def _serve(tmp: Path, pki: dict, mutual: bool) -> tuple[grpc.Server, str, Store]:
    store = Store.open(f"sqlite:///{tmp / 'store.db'}", generate_key_file(tmp / "key"))
    service = MatcherService(
        Engine(store, Thresholds.load()), Authenticator([("t", "admin", digest(TOKEN))]), "sqlite"
    )
    settings = server.Settings(
        listen="127.0.0.1:0",
        store="sqlite:///unused",
        dev_token=None,
        max_workers=2,
        max_message_mb=4,
        max_concurrent_rpcs=8,
        tls_cert=str(pki["srv_cert_path"]),
        tls_key=str(pki["srv_key_path"]),
        tls_client_ca=str(pki["ca_path"]) if mutual else None,
    )
    srv, port, _ = server.build_server(settings, service)
    srv.start()
    service.ready.set()
    return srv, f"127.0.0.1:{port}", store


@pytest.fixture
def tls_server(tmp_path: Path, pki: dict) -> Iterator[str]:
    srv, addr, store = _serve(tmp_path, pki, mutual=False)
    yield addr
    srv.stop(None).wait()
    store.close()


@pytest.fixture
def mtls_server(tmp_path: Path, pki: dict) -> Iterator[str]:
    srv, addr, store = _serve(tmp_path, pki, mutual=True)
    yield addr
    srv.stop(None).wait()
    store.close()


def test_tls_serves_clients_that_trust_the_ca(tls_server: str, pki: dict) -> None:
    with MatcherClient(tls_server, TOKEN, tls=TLS(pki["ca"]), timeout_s=10) as c:
        assert c.info()["persons"] == 0
    with MatcherClient(tls_server, TOKEN, timeout_s=5) as plain, pytest.raises(grpc.RpcError):
        plain.info()  # plaintext against a TLS port
    with MatcherClient(tls_server, TOKEN, tls=TLS(pki["rogue_cert"]), timeout_s=5) as c:
        with pytest.raises(grpc.RpcError) as e:
            c.info()  # the server's certificate is not from the CA this client trusts
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_requires_a_client_certificate_from_the_ca(mtls_server: str, pki: dict) -> None:
    good = TLS(pki["ca"], pki["cli_cert"], pki["cli_key"])
    with MatcherClient(mtls_server, TOKEN, tls=good, timeout_s=10) as c:
        assert c.info()["version"]
    for tls in (TLS(pki["ca"]), TLS(pki["ca"], pki["rogue_cert"], pki["rogue_key"])):
        with MatcherClient(mtls_server, TOKEN, tls=tls, timeout_s=5) as c:
            with pytest.raises(grpc.RpcError) as e:
                c.info()
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
