"""A threaded HTTP proxy on 127.0.0.1 for tests: forwards to one upstream registry, injecting faults.

Each request is forwarded on a fresh upstream connection and answered with ``Connection: close``, so a
fault never leaks into the next request. Faults match on method and a path substring and fire a
limited number of times:

* ``status``: answer with this status (and ``headers``) instead of forwarding; without a
  ``status``, ``headers`` are added to the forwarded answer;
* ``drop``: close the connection without answering;
* ``transform``: forward, then replace the response body by ``transform(body)``;
* ``cut_after``: forward, announce the full ``Content-Length`` but send only that many body bytes,
  then close the connection;
* ``hold``: wait until this event is set (at most 120 s) before going on, e.g. to keep a process
  mid-transfer while a test kills it.

``paginate_tags`` makes ``GET …/tags/list?n=N[&last=T]`` spec-compliant (distribution 2.8 ignores ``n``):
the proxy reads the full list upstream and serves pages of N with a ``Link: <…>; rel="next"`` header.
Every request is recorded in :attr:`FaultProxy.requests` (header names lower-cased); errors inside the
proxy (a client hanging up, or announcing more body than it sends for ``client_timeout`` seconds) are
collected in :attr:`FaultProxy.errors` instead of being printed. An upstream that cannot be reached or
does not answer within ``upstream_timeout`` seconds gets the request answered 502 (as a real proxy
would), recorded with that status and named in :attr:`FaultProxy.errors`: never a silent hang-up,
which a client would take for a dropped connection.
"""

from __future__ import annotations

import http.client
import http.server
import json
import sys
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

__all__ = ["Fault", "FaultProxy", "Seen", "flip_middle_byte"]

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
)


@dataclass(frozen=True)
class Seen:
    """One request as the proxy received it, and the status it answered (0: dropped)."""

    method: str
    path: str
    headers: dict[str, str]
    status: int


@dataclass
class Fault:
    """A fault for requests whose method is ``method`` and whose path contains ``path``.

    The first ``skip`` matching requests pass untouched; the next ``times`` ones get the fault.
    With ``header`` (a lower-case name, a substring) only requests whose header holds it match.
    """

    method: str
    path: str
    times: int = 1
    skip: int = 0
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    transform: Callable[[bytes], bytes] | None = None
    cut_after: int | None = None
    hold: threading.Event | None = None
    header: tuple[str, str] | None = None
    hits: int = 0
    skipped: int = 0


def flip_middle_byte(data: bytes) -> bytes:
    """``data`` with its middle byte inverted: same size, different digest."""
    if not data:
        return data
    i = len(data) // 2
    return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # Every request comes on a new connection (answers close it), 16 or 32 at once from an import or
    # export: socketserver's backlog of 5 overflows when a loaded machine delays the accepting thread.
    request_queue_size = 128

    def __init__(self, owner: FaultProxy) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that hangs up mid-response is expected in these tests; keep stderr clean.
        self.owner.errors.append(repr(sys.exc_info()[1]))


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # A client that announces more body than it sends must not hold a proxy thread forever.
        self.connection.settimeout(self.server.owner.client_timeout)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def log_error(self, format: str, *args: object) -> None:
        # http.server reports a socket timeout here and then closes the connection without an answer;
        # silenced with log_message, it would look to a test like a fault nobody injected. A connection
        # that times out before sending a request line (a client's spare, idle one) is no request's error.
        command = getattr(self, "command", None)
        if command:
            self.server.owner.errors.append(f"{command} {self.path}: {format % args}")

    def do_GET(self) -> None:
        self._proxy()

    do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = do_GET

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _proxy(self) -> None:
        owner = self.server.owner
        self.close_connection = True
        body = self._read_body()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP | {"content-length"}}
        seen_headers = {k.lower(): v for k, v in self.headers.items()}
        fault = owner._take(self.command, self.path, seen_headers)
        if fault is not None and fault.hold is not None:
            fault.hold.wait(120)
        if fault is not None and fault.drop:
            owner._record(Seen(self.command, self.path, seen_headers, 0))
            return
        if fault is not None and fault.status is not None:
            owner._record(Seen(self.command, self.path, seen_headers, fault.status))
            self._answer_only(fault.status, "injected fault", fault.headers)
            return
        path = self.path
        page: tuple[int, str | None] | None = None
        if owner.paginate_tags and self.command == "GET" and "/tags/list" in path:
            split = urllib.parse.urlsplit(path)
            query = urllib.parse.parse_qs(split.query)
            if "n" in query:
                page = (int(query["n"][0]), query.get("last", [None])[0])
                path = split.path
        upstream = http.client.HTTPConnection(owner.upstream_host, owner.upstream_port, timeout=owner.upstream_timeout)
        try:
            upstream.request(self.command, path, body=body or None, headers=headers)
            resp = upstream.getresponse()
            data = resp.read()
            status, reason = resp.status, resp.reason
            resp_headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP | {"content-length"}]
            head_length = resp.getheader("Content-Length")
        except OSError as exc:  # refused, reset, or no answer within upstream_timeout
            owner.errors.append(f"{self.command} {self.path}: upstream failed: {exc!r}")
            owner._record(Seen(self.command, self.path, seen_headers, 502))
            self._answer_only(502, "upstream failed")
            return
        finally:
            upstream.close()
        if page is not None and status == 200:
            data, link = self._paginate(data, *page)
            if link:
                resp_headers.append(("Link", link))
        if fault is not None:  # a forwarded answer: the fault's headers are added (e.g. a hostile Link)
            resp_headers += [(k, v) for k, v in fault.headers.items()]
            if fault.transform is not None:
                data = fault.transform(data)
        owner._record(Seen(self.command, self.path, seen_headers, status))
        self.send_response_only(status, reason)
        for key, value in resp_headers:
            self.send_header(key, value)
        if self.command == "HEAD":
            if head_length is not None:
                self.send_header("Content-Length", head_length)
        else:
            self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        if fault is not None and fault.cut_after is not None:
            self.wfile.write(data[: fault.cut_after])
        else:
            self.wfile.write(data)

    def _answer_only(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        """Answer ``status`` with a registry error body (``UNAVAILABLE``, ``message``), closing the connection."""
        payload = json.dumps({"errors": [{"code": "UNAVAILABLE", "message": message}]}).encode()
        self.send_response_only(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _paginate(self, data: bytes, n: int, last: str | None) -> tuple[bytes, str | None]:
        doc = json.loads(data)
        tags = sorted(doc.get("tags") or [])
        if last is not None:
            tags = [t for t in tags if t > last]
        doc["tags"] = tags[:n]
        link = None
        if len(tags) > n:
            split = urllib.parse.urlsplit(self.path)
            query = urllib.parse.urlencode({"n": n, "last": tags[n - 1]})
            link = f'<{split.path}?{query}>; rel="next"'
        return json.dumps(doc).encode(), link


class FaultProxy:
    """A proxy for ``upstream`` (``http://host:port``) on a free loopback port, in daemon threads."""

    def __init__(self, upstream: str, *, client_timeout: float = 3.0, upstream_timeout: float = 30.0) -> None:
        split = urllib.parse.urlsplit(upstream)
        assert split.hostname is not None and split.port is not None, upstream
        self.upstream_host = split.hostname
        self.upstream_port = split.port
        self.client_timeout = client_timeout
        self.upstream_timeout = upstream_timeout
        self.paginate_tags = False
        self.errors: list[str] = []
        self._faults: list[Fault] = []
        self._requests: list[Seen] = []
        self._lock = threading.Lock()
        self._httpd = _Server(self)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        port: int = self._httpd.server_address[1]
        return port

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    @property
    def requests(self) -> list[Seen]:
        with self._lock:
            return list(self._requests)

    def seen(self, method: str, fragment: str) -> list[Seen]:
        """The recorded ``method`` requests whose path contains ``fragment``, oldest first."""
        return [s for s in self.requests if s.method == method and fragment in s.path]

    def reset(self) -> None:
        """Forget faults, recorded requests and errors; stop paginating."""
        with self._lock:
            self._faults.clear()
            self._requests.clear()
            self.errors.clear()
            self.paginate_tags = False

    def _take(self, method: str, path: str, headers: dict[str, str]) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method != method or fault.path not in path or fault.hits >= fault.times:
                    continue
                if fault.header is not None and fault.header[1] not in headers.get(fault.header[0], ""):
                    continue
                if fault.skipped < fault.skip:
                    fault.skipped += 1
                    continue
                fault.hits += 1
                return fault
        return None

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self._requests.append(seen)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(10)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
