"""A real SMTP server in the test process (aiosmtpd), standing in for receiving MX hosts and relays.

    from tests.smtp_sink import smtp_sink  # noqa: F401  (the fixture)

    def test_x(smtp_sink):
        smtp_sink.reply_rcpt["gone@example.org"] = "550 5.1.1 No such user"
        smtp_sink.reply_data_queue.append("451 4.3.0 Try again later")   # next DATA answers this
        ... deliver ...
        smtp_sink.messages  # [Received(mail_from, rcpt_tos, data, peer)]

It parses strictly what smtplib sends (aiosmtpd refuses bare LF line ends in DATA by default only for
`\\r\\n.\\r\\n` detection, so the tests also check the bytes themselves).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest
from aiosmtpd.controller import Controller

from tests.integration.procs import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    peer: tuple
    tls: bool = False
    login: str | None = None


class _Handler:
    def __init__(self, sink: "SmtpSink"):
        self.sink = sink

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.sink.pipelining:  # aiosmtpd reads pipelined commands in order; advertise it like Postfix
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.sink.reply_rcpt.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.sink.lock:
            self.sink.sessions.add(id(session))
            if self.sink.reply_data_queue:
                return self.sink.reply_data_queue.pop(0)
            login = session.auth_data.login.decode() if getattr(session, "auth_data", None) else None
            self.sink.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                               envelope.original_content or envelope.content, session.peer,
                                               tls=session.ssl is not None, login=login))
        return "250 2.0.0 Ok: queued as TEST"


class SmtpSink:
    def __init__(self, pipelining: bool = True, **smtp_kwargs):
        self.port = free_port()
        self.pipelining = pipelining
        self.messages: list[Received] = []
        self.reply_rcpt: dict[str, str] = {}
        self.reply_data_queue: list[str] = []
        self.sessions: set[int] = set()
        self.lock = threading.Lock()
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port,
                                     decode_data=False, **smtp_kwargs)

    def start(self) -> "SmtpSink":
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def reset(self) -> None:
        with self.lock:
            self.messages.clear()
            self.reply_rcpt.clear()
            self.reply_data_queue.clear()
            self.sessions.clear()


@pytest.fixture(scope="session")
def _smtp_sink_server():
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def smtp_sink(app, _smtp_sink_server, monkeypatch):
    """The sink, empty, with the app delivering to it: MX lookups go to 127.0.0.1 on its port."""
    _smtp_sink_server.reset()
    monkeypatch.setitem(app.config, "SMTP_PORT_OVERRIDE", _smtp_sink_server.port)
    monkeypatch.setitem(app.config, "SMTP_RELAY_URL", None)
    yield _smtp_sink_server
    _smtp_sink_server.reset()


def self_signed_cert(directory) -> tuple[str, str]:
    """A certificate for 127.0.0.1 / localhost and its key, as PEM files in ``directory``."""
    import datetime
    import ipaddress
    import os

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="session")
def tls_sink(tmp_path_factory):
    """A sink that offers STARTTLS and AUTH (only after TLS, as a real submission server does).  Its
    certificate is self-signed: ``tls_sink.cert_path`` is what a client must trust."""
    import ssl

    from aiosmtpd.smtp import AuthResult

    cert_path, key_path = self_signed_cert(str(tmp_path_factory.mktemp("tls")))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"relay-user" and auth_data.password == b"relay-pass"
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    sink = SmtpSink(pipelining=False, tls_context=context, authenticator=authenticator,
                    auth_require_tls=True).start()
    sink.cert_path = cert_path
    yield sink
    sink.stop()
