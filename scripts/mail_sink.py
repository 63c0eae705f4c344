"""A local SMTP server that keeps what it receives: the `make run` mail sink and the tests' SMTP.

python scripts/mail_sink.py --port 8025 --folder instance/mail
"""

from __future__ import annotations

import argparse
import email
import email.policy
import threading
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class _Handler:
    def __init__(self, sink: MailSink) -> None:
        self.sink = sink

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.sink.keep(message, envelope.content)  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


class MailSink:
    """An SMTP server on host:port in a thread; messages kept in memory and, if asked, as .eml."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8025, folder: Path | None = None):
        self.host, self.port, self.folder = host, port, folder
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()
        self._controller = Controller(_Handler(self), hostname=host, port=port)

    def keep(self, message: EmailMessage, raw: bytes) -> None:
        """Store a received message."""
        with self._lock:
            self.messages.append(message)
            count = len(self.messages)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{count:04d}.eml").write_bytes(raw)

    def start(self) -> MailSink:
        """Start listening."""
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        self._controller.stop()

    def to(self, address: str) -> list[EmailMessage]:
        """The messages received for this address, oldest first."""
        with self._lock:
            return [m for m in self.messages if address.lower() in str(m["To"]).lower()]


def main() -> None:
    """Run the sink until interrupted."""
    parser = argparse.ArgumentParser(description="Local SMTP sink")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--folder", type=Path, default=Path("instance/mail"))
    args = parser.parse_args()
    sink = MailSink(args.host, args.port, args.folder).start()
    print(
        f"mail sink on smtp://{args.host}:{args.port}; messages in {args.folder}/*.eml", flush=True
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sink.stop()


if __name__ == "__main__":
    main()
