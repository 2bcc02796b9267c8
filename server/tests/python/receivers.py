"""A local HTTP receiver standing in for a log destination (webhook,
LangSmith, an OTLP collector): it records every request and can be told to
answer the next few with an error, to exercise retries."""

import gzip
import json
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Record:
    method: str
    path: str
    headers: dict  # lower-cased names
    raw: bytes  # the body as sent (possibly compressed)
    status: int  # what the receiver answered
    at: float = field(default_factory=time.time)

    @property
    def body(self) -> bytes:
        """The body, decompressed when sent with a Content-Encoding."""
        enc = self.headers.get("content-encoding", "").lower()
        if enc == "gzip":
            return gzip.decompress(self.raw)
        if enc == "deflate":
            return zlib.decompress(self.raw)
        return self.raw

    def json(self):
        return json.loads(self.body)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class Receiver:
    """`with Receiver() as r:` ... `r.url`, `r.records`, `r.fail_next(2, 503)`,
    `r.wait_for(3)`."""

    def __init__(self):
        self.records: list[Record] = []
        self._cond = threading.Condition()
        self._failures: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _read_body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            # trailers up to the blank line
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _handle(self):
                raw = self._read_body()
                with receiver._cond:
                    status = receiver._failures.pop(0) if receiver._failures else 200
                    receiver.records.append(
                        Record(
                            method=self.command,
                            path=self.path,
                            headers={k.lower(): v for k, v in self.headers.items()},
                            raw=raw,
                            status=status,
                        )
                    )
                    receiver._cond.notify_all()
                ctype = self.headers.get("Content-Type", "")
                if status >= 400:
                    payload, out_type = b'{"error": "injected failure"}', "application/json"
                elif "protobuf" in ctype:
                    payload, out_type = b"", "application/x-protobuf"  # an empty Export*ServiceResponse
                else:
                    payload, out_type = b"{}", "application/json"
                self.send_response(status)
                self.send_header("Content-Type", out_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_POST = do_PUT = do_GET = do_DELETE = do_PATCH = _handle

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def fail_next(self, n: int, status: int = 503):
        """Answer the next `n` requests with `status`."""
        with self._cond:
            self._failures.extend([status] * n)

    def snapshot(self) -> list[Record]:
        with self._cond:
            return list(self.records)

    def wait_for(self, k: int, timeout: float = 10.0, ok_only: bool = False) -> list[Record]:
        """At least `k` records (only successfully answered ones with
        `ok_only`); raises AssertionError after `timeout` seconds."""
        return self.wait_until(lambda recs: len([r for r in recs if r.ok or not ok_only]) >= k, timeout)

    def wait_until(self, pred, timeout: float = 10.0) -> list[Record]:
        """Wait until `pred(records)` holds; returns the records then."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred(list(self.records)):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"receiver: condition not met within {timeout}s; got {len(self.records)} requests: "
                        + ", ".join(f"{r.method} {r.path} -> {r.status}" for r in self.records)
                    )
                self._cond.wait(min(left, 0.1))
            return list(self.records)

    def close(self):
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
