"""A TCP relay in front of a storage emulator that can cut the service off, for outage tests.

The emulator itself keeps running (and keeps its state), so after the outage a test can ask it what the
client left behind (an unfinished multipart upload, say). While down, every connection is closed as soon
as its request line is read (the client sees a dropped connection, as when a service goes away); with
``until_abort`` the outage ends at the first multipart-upload abort (``DELETE ...?uploadId=``): that
first attempt is dropped too, so the client must retry its abort once the service is back.
"""

from __future__ import annotations

import socket
import threading


class OutageProxy:
    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (host, target_port)
        self.listener = socket.create_server((host, 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self.lock = threading.Lock()
        self.down = False
        self.until_abort = False
        self.refused: list[str] = []  # request lines dropped while down
        self.live: set[socket.socket] = set()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    # control ------------------------------------------------------------------------------
    def cut(self, *, until_abort: bool = False) -> None:
        """Storage goes away: live connections drop, new ones are dropped after their request line."""
        with self.lock:
            self.down, self.until_abort = True, until_abort
            live, self.live = list(self.live), set()
        for s in live:
            _close(s)

    def restore(self) -> None:
        with self.lock:
            self.down = False

    def close(self) -> None:
        self.closed = True
        self.cut()
        _close(self.listener)

    # relay --------------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        head = b""
        with self.lock:
            down = self.down
        if down:
            client.settimeout(10)
            try:
                while b"\r\n" not in head and len(head) < 65536:
                    data = client.recv(4096)
                    if not data:
                        break
                    head += data
            except OSError:
                pass
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            with self.lock:
                self.refused.append(line)
                if self.until_abort and line.startswith("DELETE ") and "uploadId=" in line:
                    self.down = False  # the service is back for the client's next attempt
            _close(client)
            return
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            _close(client)
            return
        with self.lock:
            self.live.update((client, upstream))
        threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
        _pump(client, upstream)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        src.settimeout(None)
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        _close(src)
        _close(dst)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass
