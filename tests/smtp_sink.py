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


class _Handler:
    def __init__(self, sink: "SmtpSink"):
        self.sink = sink

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
            self.sink.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                               envelope.original_content or envelope.content, session.peer))
        return "250 2.0.0 Ok: queued as TEST"


class SmtpSink:
    def __init__(self):
        self.port = free_port()
        self.messages: list[Received] = []
        self.reply_rcpt: dict[str, str] = {}
        self.reply_data_queue: list[str] = []
        self.sessions: set[int] = set()
        self.lock = threading.Lock()
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port,
                                     decode_data=False)

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
