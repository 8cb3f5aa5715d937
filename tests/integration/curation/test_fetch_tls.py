"""HTTPS through a pinned IP: SNI and certificate verification use the URL's hostname, TCP goes to the checked IP.

A throwaway CA and a server certificate for `images.test` are generated in memory; the loopback TLS server runs
in a thread; the stub resolver maps test names to 127.0.0.1 (allowlisted). Nothing leaves the machine.
"""

from __future__ import annotations

import datetime as dt
import io
import ipaddress
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from curation.fetch import FetchStatus, fetch_url
from curation.fetch_config import FetchConfig
from curation.fetch_http import system_connect

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

pytestmark = pytest.mark.timeout(60)


def _cert(subject: str, issuer_key, issuer_name, key, *, ca: bool, san: list[str] | None = None):
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in san]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(obj) -> bytes:
    if hasattr(obj, "private_bytes"):
        return obj.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    return obj.public_bytes(serialization.Encoding.PEM)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        body = self.server.png
        self.server.hosts.append(self.headers.get("Host", ""))
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    ca_key, srv_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "clipforge test CA")])
    ca = _cert("clipforge test CA", ca_key, ca_name, ca_key, ca=True)
    leaf = _cert("images.test", ca_key, ca_name, srv_key, ca=False, san=["images.test"])
    (d / "ca.pem").write_bytes(_pem(ca))
    (d / "srv.pem").write_bytes(_pem(leaf) + _pem(srv_key))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "srv.pem")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.daemon_threads = True
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (0, 90, 200)).save(buf, "PNG")
    srv.png = buf.getvalue()
    srv.hosts = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv, str(d / "ca.pem")
    srv.shutdown()
    srv.server_close()


def _resolver(host: str, port: int) -> list[str]:
    if host in ("images.test", "other.test"):
        return ["127.0.0.1"]
    raise socket.gaierror(f"test: no DNS for {host}")


def _loopback_only(address, timeout):
    assert ipaddress.ip_address(address[0]).is_loopback, address
    return system_connect(address, timeout)


def test_https_to_pinned_ip_verifies_the_url_hostname(tls_server):
    srv, ca = tls_server
    cfg = FetchConfig(allow_cidrs=["127.0.0.0/8"], ca_file=ca, deadline_s=5)
    r = fetch_url(
        f"https://images.test:{srv.server_address[1]}/a.png", cfg, resolver=_resolver, connect=_loopback_only
    )
    assert (r.status, r.body, r.address) == (FetchStatus.ok, srv.png, "127.0.0.1")
    assert srv.hosts[-1] == f"images.test:{srv.server_address[1]}"  # Host header: the name, not the pinned IP


def test_https_certificate_for_another_name_is_a_tls_error(tls_server):
    srv, ca = tls_server
    cfg = FetchConfig(allow_cidrs=["127.0.0.0/8"], ca_file=ca, deadline_s=5)
    r = fetch_url(f"https://other.test:{srv.server_address[1]}/a.png", cfg, resolver=_resolver, connect=_loopback_only)
    assert r.status == FetchStatus.tls_error and "other.test" in r.detail
    assert r.attempts == 1  # certificate failures are not retried


def test_untrusted_ca_is_a_tls_error_unless_verification_is_off(tls_server):
    srv, _ = tls_server
    url = f"https://images.test:{srv.server_address[1]}/a.png"
    cfg = FetchConfig(allow_cidrs=["127.0.0.0/8"], deadline_s=5)
    assert fetch_url(url, cfg, resolver=_resolver, connect=_loopback_only).status == FetchStatus.tls_error
    insecure = FetchConfig(allow_cidrs=["127.0.0.0/8"], deadline_s=5, verify_tls=False)
    assert fetch_url(url, insecure, resolver=_resolver, connect=_loopback_only).status == FetchStatus.ok
