"""Real alert receivers for the tests: an HTTP server (webhook and Slack) in a thread, and an SMTP server (aiosmtpd).

The HTTP receiver verifies every webhook's HMAC-SHA256 signature itself, with nothing but the standard library, as
a team's receiver would (it never calls mlops_wb), and can be told to fail a number of requests first.
"""
from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

RECEIVER_SECRET = "receiver-secret-0123456789"


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    signature_ok: bool | None  # None: not a webhook request

    @property
    def json(self):
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    "A real HTTP server on 127.0.0.1: records every POST; `fail[path] = n` makes the next n requests answer 503."
    secret: str = RECEIVER_SECRET
    requests: list[Request] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)
    fail_status: int = 503

    def start(self, port: int = 0) -> HttpReceiver:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k: v for k, v in self.headers.items()}
                ok = None
                if "X-Mlops-Wb-Signature" in headers:
                    ts = headers.get("X-Mlops-Wb-Timestamp", "")
                    mac = hmac.new(owner.secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
                    ok = (ts.isdigit() and abs(time.time() - int(ts)) <= 300
                          and hmac.compare_digest("sha256=" + mac, headers["X-Mlops-Wb-Signature"]))
                if owner.fail.get(self.path, 0) > 0:
                    owner.fail[self.path] -= 1
                    status = owner.fail_status
                elif ok is False:
                    status = 401
                else:
                    status = 200
                owner.requests.append(Request(self.path, headers, body, status, ok))
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"no")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def port(self) -> int:
        return self.server.server_port

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpReceiver:
    "A real SMTP server (aiosmtpd) on 127.0.0.1: plain, STARTTLS or implicit TLS, with an optional login."

    def __init__(self, port: int, *, security: str = "none", cert: tuple[Path, Path] | None = None,
                 user: str | None = None, password: str | None = None):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        self.messages: list[dict] = []
        owner = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                owner.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                                       "message": message_from_bytes(envelope.original_content or envelope.content,
                                                                     policy=policy.default),
                                       "tls": server.transport.get_extra_info("ssl_object") is not None,
                                       "login": session.authenticated})
                return "250 OK"

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user \
                and auth_data.password.decode() == password
            return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

        kwargs: dict = {}
        ctx = None
        if cert is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(str(cert[0]), str(cert[1]))
        if security == "starttls":
            kwargs.update(tls_context=ctx, require_starttls=True)
        if user:
            # aiosmtpd only knows of STARTTLS: over implicit TLS the connection is encrypted before it starts
            kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=security == "starttls")
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=port, server_hostname="localhost",
                                     ssl_context=ctx if security == "ssl" else None, **kwargs)
        self.controller.start()
        self.port = port

    def stop(self) -> None:
        self.controller.stop()


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    "A self-signed certificate for localhost and 127.0.0.1 (cert.pem, key.pem): point SSL_CERT_FILE at cert.pem."
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    return folder / "cert.pem", folder / "key.pem"
