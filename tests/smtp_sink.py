"""A real local SMTP server that keeps every message it accepts (for the e-mail alert test).

Speaks just enough SMTP for a client without TLS or login: EHLO/HELO, MAIL, RCPT, DATA, RSET,
NOOP, QUIT.
"""

from __future__ import annotations

import socketserver
import threading
from contextlib import contextmanager
from email import message_from_bytes
from email.message import Message
from typing import Iterator

from ports import free_port


@contextmanager
def smtp_server() -> Iterator[tuple[int, list[Message]]]:
    """Yields (its port, the messages received so far)."""
    received: list[Message] = []

    class Handler(socketserver.StreamRequestHandler):
        def reply(self, line: str) -> None:
            self.wfile.write(line.encode() + b"\r\n")

        def handle(self) -> None:
            self.reply("220 localhost accelsync test SMTP")
            while line := self.rfile.readline():
                verb = line.decode(errors="replace").strip().split(" ", 1)[0].upper()
                if verb == "EHLO":
                    self.reply("250-localhost")
                    self.reply("250 8BITMIME")
                elif verb == "DATA":
                    self.reply("354 end with <CRLF>.<CRLF>")
                    data = b""
                    while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                        data += chunk[1:] if chunk.startswith(b"..") else chunk
                    received.append(message_from_bytes(data))
                    self.reply("250 OK")
                elif verb == "QUIT":
                    self.reply("221 bye")
                    return
                else:  # HELO, MAIL, RCPT, RSET, NOOP
                    self.reply("250 OK")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", free_port()), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()
        server.server_close()
