"""/health under hostile clients, over real sockets: HEAD gets headers and no body, a client
that trickles its headers is cut off at the header deadline, and idle connections past the
cap are answered 503 and closed instead of piling up."""

import asyncio
import socket
import threading
import time

from streamer.health import HealthServer


class ServerThread:
    """A HealthServer on its own event loop in a thread, so the test can use blocking sockets."""

    def __init__(self, **limits):
        self.loop = asyncio.new_event_loop()
        self.server = HealthServer(lambda: (True, {"status": "ok", "pad": "x" * 100}),
                                   lambda: "ticks_total 1\n", port=0, **limits)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(5)
        return self

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def connect(self) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.server.port), timeout=10)
        return s


def read_all(s: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def request(srv: ServerThread, method: str, path: str = "/health") -> tuple[bytes, dict, bytes]:
    with srv.connect() as s:
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        raw = read_all(s)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return lines[0].encode(), headers, body


def test_head_answers_the_get_headers_without_a_body():
    with ServerThread() as srv:
        status, get_headers, get_body = request(srv, "GET")
        head_status, head_headers, head_body = request(srv, "HEAD")
        m_status, m_headers, m_body = request(srv, "HEAD", "/metrics")
    assert status == head_status == b"HTTP/1.1 200 OK"
    assert len(get_body) > 100 and int(get_headers["Content-Length"]) == len(get_body)
    assert head_headers == get_headers  # same type, same Content-Length, Connection: close
    assert head_body == b""
    assert m_status == b"HTTP/1.1 200 OK" and m_body == b""
    assert int(m_headers["Content-Length"]) == len(b"ticks_total 1\n")


def test_a_client_trickling_headers_is_closed_at_the_header_deadline():
    with ServerThread(header_timeout_s=1.0) as srv:
        s = srv.connect()
        s.sendall(b"GET /health HTTP/1.1\r\n")
        closed = False
        answer = b""
        for i in range(200):  # one header every 0.1 s: each line is quick, the head never ends
            try:
                s.sendall(f"X-Slow-{i}: y\r\n".encode())
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            s.settimeout(0.1)
            try:
                answer = s.recv(100)
                if answer == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
            except ConnectionResetError:
                closed = True
                break
        s.close()
        assert closed, "the server kept a client whose headers never ended"
        assert answer == b"", "a timed-out client gets no answer"
        assert srv.server.timed_out == 1
        # the server is still answering others
        assert request(srv, "GET")[0] == b"HTTP/1.1 200 OK"


def test_idle_connections_are_capped_and_time_out():
    cap = 8
    with ServerThread(header_timeout_s=1.5, max_connections=cap) as srv:
        idle = [srv.connect() for _ in range(cap)]
        # wait until the server has taken all of them (accepts are asynchronous)
        deadline = time.monotonic() + 10
        while srv.server.open_connections < cap and time.monotonic() < deadline:
            time.sleep(0.01)
        assert srv.server.open_connections == cap
        extra = [srv.connect() for _ in range(40)]
        answers = [read_all(s) for s in extra]  # each returns: the server closes them at once
        assert all(a.startswith(b"HTTP/1.1 503 Service Unavailable") for a in answers), answers[:3]
        assert srv.server.open_connections <= cap
        assert srv.server.rejected_busy == 40
        # the idle ones are closed by the header deadline, without an answer...
        assert [read_all(s) for s in idle] == [b""] * cap
        for s in idle + extra:
            s.close()
        assert srv.server.timed_out == cap
        # ...which frees the slots for real probes
        assert request(srv, "GET")[0] == b"HTTP/1.1 200 OK"


def test_an_oversized_head_is_refused():
    line = b"GET /health HTTP/1.1\r\nX: " + b"a" * 20_000 + b"\r\n\r\n"
    with ServerThread(max_header_bytes=4096) as srv:
        with srv.connect() as s:
            s.sendall(line)
            raw = read_all(s)
    assert raw.startswith(b"HTTP/1.1 431")
