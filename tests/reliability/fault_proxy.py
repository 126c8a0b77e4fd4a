"""A tiny fault-injecting TCP proxy for HTTP (S3) traffic, for the fault tests.

It listens on 127.0.0.1 (free port) in front of an upstream ``host:port`` (the moto server).
For each new client connection it reads the first HTTP request (forwarded with ``Connection:
close``, so that every request comes on its own connection); if a fault is scheduled for that
request number it answers with the fault and closes the connection, else it forwards the bytes
both ways until either side closes. Faults:

* ``"503"``: ``503 SlowDown`` with S3's XML error body (throttling);
* ``"500"``: ``500 InternalError``;
* ``"reset"``: the connection is closed with an RST (``SO_LINGER`` 0) without any answer.

``schedule`` is a list of faults for requests 1, 2, 3, … (``None`` = forward); ``every`` adds a
periodic fault (e.g. ``every=(5, "503")``: every 5th request). ``on_request(n, head)`` lets a test
act when request ``n`` arrives (e.g. kill a publishing process). Threads are daemons, sockets have
timeouts, and at most ``max_connections`` connections are served at once (bounded).
"""
from __future__ import annotations

import socket
import struct
import threading
from typing import Callable

_BODIES = {
    "503": (b"503 Slow Down", b"SlowDown", b"Please reduce your request rate."),
    "500": (b"500 Internal Server Error", b"InternalError", b"We encountered an internal error. Please try again."),
}


class FaultProxy:
    def __init__(self, upstream: str, schedule: list | None = None, every: tuple[int, str] | None = None,
                 on_request: Callable[[int, bytes], None] | None = None, max_connections: int = 32,
                 timeout: float = 30.0):
        host, _, port = upstream.replace("http://", "").rstrip("/").partition(":")
        self.upstream = (host, int(port))
        self.schedule = list(schedule or [])
        self.every = every
        self.on_request = on_request
        self.timeout = timeout
        self.requests = 0                      # connections seen (= first requests)
        self.injected: dict[str, int] = {"503": 0, "500": 0, "reset": 0}
        self.methods: list[str] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    @property
    def total_injected(self) -> int:
        return sum(self.injected.values())

    def __enter__(self) -> "FaultProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._closed = True
        try:
            self._sock.close()
        except OSError:
            pass
        self._thread.join(timeout=5)

    # ------------------------------------------------------------------ internals
    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            self._slots.acquire()
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _fault_for(self, n: int) -> str | None:
        if n <= len(self.schedule) and self.schedule[n - 1]:
            return self.schedule[n - 1]
        if self.every and n > len(self.schedule) and n % self.every[0] == 0:
            return self.every[1]
        return None

    def _serve(self, client: socket.socket) -> None:
        try:
            client.settimeout(self.timeout)
            head = _read_head(client)
            if not head:
                client.close()
                return
            with self._lock:
                self.requests += 1
                n = self.requests
                self.methods.append(head.split(b" ", 1)[0].decode("ascii", "replace"))
                fault = self._fault_for(n)
                if fault:
                    self.injected[fault] += 1
            if self.on_request is not None:
                self.on_request(n, head)
            if fault == "reset":
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()
                return
            if fault:
                _drain_body(client, head)
                status, code, message = _BODIES[fault]
                body = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>' + code + b"</Code><Message>"
                        + message + b"</Message><RequestId>fault-proxy</RequestId></Error>")
                client.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/xml\r\nContent-Length: "
                               + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
                client.close()
                return
            upstream = socket.create_connection(self.upstream, timeout=self.timeout)
            upstream.sendall(_one_request_per_connection(head))
            t = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
            t.start()
            _pump(client, upstream)
            t.join(timeout=self.timeout)
        except OSError:
            pass
        finally:
            try:
                client.close()
            except OSError:
                pass
            self._slots.release()


def _read_head(sock: socket.socket) -> bytes:
    """Bytes up to and including the end of the request headers (plus whatever came with them)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
        if len(data) > 1 << 20:
            break
    return data


def _one_request_per_connection(head: bytes) -> bytes:
    """Ask the upstream to close after its answer, so every request arrives on a new connection
    and is counted (and can be faulted) by the proxy."""
    headers, sep, rest = head.partition(b"\r\n\r\n")
    lines = [ln for ln in headers.split(b"\r\n") if not ln.lower().startswith(b"connection:")]
    return b"\r\n".join(lines + [b"Connection: close"]) + sep + rest


def _drain_body(sock: socket.socket, head: bytes) -> None:
    """Read the request body announced by Content-Length (so the client is not cut off mid-send)."""
    headers, _, already = head.partition(b"\r\n\r\n")
    length = 0
    for line in headers.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip() or 0)
    remaining = length - len(already)
    while remaining > 0:
        chunk = sock.recv(min(remaining, 65536))
        if not chunk:
            return
        remaining -= len(chunk)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            chunk = src.recv(65536)
            if not chunk:
                break
            dst.sendall(chunk)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
