"""HTTPS for the Salesforce emulator: a throwaway CA, a server certificate, a TLS listener.

simple-salesforce builds every URL as ``https://...`` (spec §0), so the emulator must speak TLS.
At start we make a certificate authority and a server certificate for ``localhost`` and
``127.0.0.1`` signed by it, write them to a fresh temporary directory (removed when the process
exits) and export the CA file as ``SALESFORCE_CA_BUNDLE`` for clients to trust.

The TLS handshake runs in the connection's own thread (``finish_request``), not in the accept
loop, so one slow or broken client cannot stall the listener.
"""

from __future__ import annotations

import atexit
import datetime as dt
import ipaddress
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import traceback
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from crm_assets.sandbox.server import BadRequest, Request, Response, _Handler, json_response

CONNECTION_IDLE_SECONDS = 60


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "crm_assets sandbox"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_certificates(
    directory: Path, hosts: tuple[str, ...] = ("localhost", "127.0.0.1")
) -> dict[str, Path]:
    """Write ``ca.pem`` (the bundle to trust), ``server.pem`` and ``server.key`` into `directory`."""
    now = dt.datetime.now(dt.UTC)
    valid_from, valid_to = now - dt.timedelta(days=1), now + dt.timedelta(days=30)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("crm_assets sandbox CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_to)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_to)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = {"ca": directory / "ca.pem", "cert": directory / "server.pem", "key": directory / "server.key"}
    paths["ca"].write_bytes(ca_cert.public_bytes(pem))
    paths["cert"].write_bytes(cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    paths["key"].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    paths["key"].chmod(0o600)
    return paths


class HttpsServer(ThreadingHTTPServer):
    """A threaded HTTPS server handing every request to one ``handler(request) -> Response``."""

    daemon_threads = True
    allow_reuse_address = True
    verbose = False

    def __init__(self, address: tuple[str, int], handler: Any, context: ssl.SSLContext):
        self.handler = handler
        self.tls = context
        super().__init__(address, _Handler)

    def finish_request(self, request: socket.socket, client_address: Any) -> None:
        request.settimeout(CONNECTION_IDLE_SECONDS)
        try:
            tls = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):  # a client that does not trust us, or hung up mid-handshake
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()

    def dispatch(self, request: Request) -> Response:
        try:
            return self.handler(request)
        except BadRequest as exc:
            return json_response(400, [{"errorCode": "MALFORMED_QUERY", "message": str(exc)}])
        except Exception as exc:  # an emulator bug must surface in the test, not hang the client
            traceback.print_exc(file=sys.stderr)
            return json_response(
                500,
                [
                    {
                        "errorCode": "UNKNOWN_EXCEPTION",
                        "message": f"sandbox error: {type(exc).__name__}: {exc}",
                    }
                ],
            )


def start_https(host: str, handler: Any) -> tuple[HttpsServer, Path]:
    """Generate certificates, listen on a free port of `host`, serve in a daemon thread.

    Returns the server and the CA bundle path. The certificate directory is removed at exit.
    """
    directory = Path(tempfile.mkdtemp(prefix="crm-assets-salesforce-tls-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    paths = make_certificates(directory)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(paths["cert"], paths["key"])
    server = HttpsServer((host, 0), handler, context)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="sandbox-https", daemon=True
    )
    thread.start()
    return server, paths["ca"]
