"""A local SMTP server that keeps every mail as a file: where the demo's alert channel delivers.

`python -m pressfleet.stack.mailbox --port 8025 --folder .state/mail` (the demo starts it through
pressfleet.stack.control.start_mailbox; `make down` stops it by its PID). Loopback only, no relaying: each
message lands in FOLDER as `<unix time>-<n>.eml`, owner-only. aiosmtpd is the SMTP server.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import threading
import time
from email import message_from_bytes, policy
from pathlib import Path

_counter = itertools.count(1)


class SaveToFolder:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's handler hook
        name = f"{time.time():.3f}-{next(_counter)}.eml"
        tmp = self.folder / f".{name}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(envelope.original_content or envelope.content)
        tmp.replace(self.folder / name)
        return "250 Message accepted for delivery"


def read_mail(folder: Path, since: float = 0.0) -> list[dict]:
    """The mails in FOLDER received after `since` (unix time), oldest first: subject, to, body, file."""
    out = []
    for p in sorted(Path(folder).glob("*.eml"), key=lambda p: float(p.name.split("-")[0])):
        at = float(p.name.split("-")[0])
        if at <= since:
            continue
        msg = message_from_bytes(p.read_bytes(), policy=policy.default)
        body = msg.get_body(preferencelist=("plain",))
        out.append({"at": at, "subject": str(msg["Subject"] or ""), "to": str(msg["To"] or ""),
                    "body": body.get_content() if body else "", "file": str(p)})
    return out


def main(argv: list[str] | None = None) -> int:
    from aiosmtpd.controller import Controller

    ap = argparse.ArgumentParser(prog="python -m pressfleet.stack.mailbox")
    ap.add_argument("--port", type=int, default=8025)
    ap.add_argument("--folder", type=Path, required=True)
    args = ap.parse_args(argv)
    os.umask(0o077)
    args.folder.mkdir(parents=True, exist_ok=True)
    controller = Controller(SaveToFolder(args.folder), hostname="127.0.0.1", port=args.port)
    controller.start()
    print(f"mailbox on 127.0.0.1:{args.port}, mail kept in {args.folder}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    controller.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
