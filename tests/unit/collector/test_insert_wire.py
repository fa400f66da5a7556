"""What the shipper's inserts put on the wire to a ClickHouse server (a tiny local listener).

ClickHouse 26.x turns async inserts on by default, and an async insert ignores
``insert_deduplication_token``: every insert must say ``async_insert=0``. Inserts to a server
are lz4-compressed. The listener answers clickhouse-connect's start-up queries just enough and
records every request as it arrived.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa
import pytest

from logging_backend import store
from logging_backend.collector import shipper as sh
from logging_backend.spool import layout

LZ4_FRAME_MAGIC = b"\x04\x22\x4d\x18"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(s: str) -> bytes:
    return _varint(len(s)) + s.encode()


def _empty_native_block(columns: list[tuple[str, str]]) -> bytes:
    """A Native-format block with these columns and no rows."""
    out = _varint(len(columns)) + _varint(0)
    for name, typ in columns:
        out += _string(name) + _string(typ)
    return out


class Listener:
    """127.0.0.1 HTTP server posing as ClickHouse; ``requests`` holds (params, headers, body)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self) -> None:
                query = urllib.parse.urlparse(self.path).query
                params = dict(urllib.parse.parse_qsl(query))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.requests.append((params, dict(self.headers), body))
                sql = params.get("query") or body.decode("utf-8", "replace")
                if "version()" in sql:
                    payload = b"26.9.1.1\tUTC\n"
                elif "system.settings" in sql:
                    payload = _empty_native_block(
                        [("name", "String"), ("value", "String"), ("readonly", "UInt8")]
                    )
                else:
                    payload = b""
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("X-ClickHouse-Summary", '{"written_rows":"0"}')
                self.end_headers()
                self.wfile.write(payload)

            do_GET = _answer
            do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def inserts(self) -> list[tuple[dict[str, str], dict[str, str], bytes]]:
        return [r for r in self.requests if "INSERT" in r[0].get("query", "").upper()]

    def __enter__(self) -> Listener:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener():
    with Listener() as running:
        yield running


def test_every_server_insert_is_synchronous_deduplicated_and_lz4(tmp_path, listener):
    client = store.connect(f"http://stagelog:secret@127.0.0.1:{listener.port}")
    n = 50_000
    data = pa.table(
        {
            "ts": pa.array([time.time_ns() // 1000] * n, pa.timestamp("us", tz="UTC")),
            "request_id": ["same-request"] * n,
            "stage": ["features"] * n,
            "wall_ms": pa.array([0.0] * n, pa.float64()),
        }
    )
    layout.write_table_segment(tmp_path, "stage_events", data,
                               name=f"{1000:019d}-h-1-00000000.arrow")
    layout.write_table_segment(tmp_path, "predictions", data.slice(0, 10),
                               name=f"{1001:019d}-h-1-00000001.arrow")
    assert sh.Shipper(client, tmp_path).ship_all() == n + 10
    inserts = listener.inserts()
    assert len(inserts) == 2
    for params, _headers, body in inserts:
        assert params["async_insert"] == "0"
        assert params["insert_deduplicate"] == "1"
        assert len(params["insert_deduplication_token"]) == 64
        assert "FORMAT Arrow" in params["query"]
        assert LZ4_FRAME_MAGIC in body  # Arrow buffers compressed with lz4 frames
    params, _, body = inserts[-1] if "stage_events" in inserts[-1][0]["query"] else inserts[0]
    assert "stagelog.stage_events" in params["query"]
    plain = pa.BufferOutputStream()
    with pa.ipc.new_file(plain, data.schema) as writer:
        writer.write_table(data)
    assert len(body) < plain.getvalue().size // 3  # 50k alike rows: lz4 shrinks them
    sent = pa.ipc.open_file(pa.py_buffer(body)).read_all()
    assert sent.num_rows == n and sent.column("request_id")[0].as_py() == "same-request"
    assert params["insert_deduplication_token"] == sh.batch_token(
        "stage_events", [f"stage_events/{1000:019d}-h-1-00000000.arrow"]
    )
