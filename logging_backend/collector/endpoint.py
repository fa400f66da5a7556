"""The query door: ClickHouse's HTTP interface over the embedded store, on 127.0.0.1.

The subset that clickhouse-connect's HTTP client, curl and Grafana's ClickHouse data source use:

- ``GET /ping`` (and ``GET /`` without a query): ``Ok.``; ``GET /metrics``: the collector's
  Prometheus metrics (when a registry is given).
- ``GET`` or ``POST /`` with the statement in ``query=`` and/or the body; ``database``,
  ``default_format``, ``param_<name>`` (for ``{name:Type}``), ``query_id`` and settings as URL
  parameters; credentials as HTTP basic auth, ``X-ClickHouse-User``/``X-ClickHouse-Key`` or
  ``user``/``password`` parameters.
- Responses carry ``X-ClickHouse-Query-Id``, ``-Format``, ``-Timezone``, ``-Summary`` and
  ``-Server-Display-Name``; errors carry ``X-ClickHouse-Exception-Code`` and the body
  ``Code: N. DB::Exception: …`` with ClickHouse's status for that code (403 for a wrong or
  missing password). Results stream in chunks (compressed with gzip, deflate, zstd or lz4
  when the client's ``Accept-Encoding`` asks), so a large result never sits in memory whole.

Reader mode (the collector's door): every statement passes ``logging_backend.store.guard`` and
runs on its own read-only session with limits (``logging_backend.store.sessions``).

Admin mode (``python -m logging_backend.collector.endpoint --admin --path DIR``): the same
server over a separate embedded store that also takes DDL and inserts (``INSERT … FORMAT
<fmt>`` with the data in the body, settings such as ``insert_deduplication_token`` honoured):
the ClickHouse-protocol endpoint that tests run stagelog's ``http://`` DSN path against, since
no ClickHouse server runs on these machines. It is never what ``stagelog up`` starts.
"""

from __future__ import annotations

import argparse
import base64
import email.parser
import email.policy
import gzip
import json
import logging
import re
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from logging_backend.store import guard as sqlguard
from logging_backend.store.access import Credentials
from logging_backend.store.sessions import ReaderLimits, Sessions, SettingRefused, reader_settings

log = logging.getLogger("stagelog.endpoint")

VERSION = "26.9.2.1"  # the embedded engine (chDB 26.9)
MAX_QUERY_BYTES = 1 << 20
READ_CHUNK = 1 << 16
# URL parameters that steer the HTTP exchange rather than the query (ClickHouse's names).
_TRANSPORT = frozenset(
    {
        "query", "database", "default_format", "user", "password", "query_id", "session_id",
        "session_timeout", "session_check", "compress", "decompress", "buffer_size",
        "wait_end_of_query", "quota_key", "stacktrace", "role", "client_protocol_version",
        "enable_http_compression", "http_zlib_compression_level", "send_progress_in_http_headers",
        "http_headers_progress_interval_ms", "cancel_http_readonly_queries_on_client_close",
        "http_wait_end_of_query", "http_response_buffer_size", "add_http_cors_header",
        "readonly",
    }
)
_CODE = re.compile(r"Code: (\d+)\.")
_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)\s*(?:\(version [^)]*\))?\s*\.?\s*$")
_INSERT = re.compile(
    r"^\s*INSERT\s+INTO\s+(?P<target>(?!FUNCTION\b)[`\w.]+(?:\s*\([^)]*\))?)\s*"
    r"(?:SETTINGS\s+(?P<settings>.*?)\s+)?FORMAT\s+(?P<fmt>\w+)\s*$",
    re.I | re.S,
)
_INSERT_HEAD = re.compile(
    r"^(?P<statement>\s*INSERT\s+INTO\s+[^\n]*?\bFORMAT\s+\w+)[ \t]*\r?\n?", re.I
)
# Output formats whose blocks, as chDB streams them, concatenate into one valid result.
_CONCATENATES = re.compile(
    r"^(Native|RowBinary|TabSeparated|TSV|TabSeparatedRaw|TSVRaw|CSV|JSONEachRow|JSONLines|"
    r"NDJSON|JSONCompactEachRow|JSONStringsEachRow|JSONCompactStringsEachRow|Values|"
    r"LineAsString|RawBLOB|Null)$",
    re.I,
)
# Formats with a header chDB repeats on every block: streamed with the header sent once.
_HEADERED = re.compile(
    r"^(TabSeparated|TSV|TabSeparatedRaw|TSVRaw|CSV|JSONCompactEachRow|"
    r"JSONCompactStringsEachRow)WithNames(AndTypes)?$",
    re.I,
)
_CONTENT_TYPES = (
    ("TabSeparated", "text/tab-separated-values; charset=UTF-8"),
    ("TSV", "text/tab-separated-values; charset=UTF-8"),
    ("CSV", "text/csv; charset=UTF-8; header=absent"),
    ("JSON", "application/json; charset=UTF-8"),
    ("Pretty", "text/plain; charset=UTF-8"),
    ("Values", "text/plain; charset=UTF-8"),
)
# ClickHouse's exceptionCodeToHTTPStatus for the codes this door gives.
_STATUS = {
    194: 401,  # REQUIRED_PASSWORD
    192: 403, 193: 403, 516: 403, 497: 403,  # UNKNOWN_USER, WRONG_PASSWORD, AUTH…, ACCESS_DENIED
    62: 400, 27: 400, 36: 400, 53: 400, 6: 400, 26: 400, 41: 400, 70: 400,  # syntax, parse
    60: 404, 46: 404, 47: 404, 50: 404, 56: 404, 81: 404, 115: 404, 73: 404,  # unknown ...
    159: 408,  # TIMEOUT_EXCEEDED
    202: 503,  # TOO_MANY_SIMULTANEOUS_QUERIES
    48: 501,  # NOT_IMPLEMENTED
}


class ClickHouseHTTPError(Exception):
    """An error answered the ClickHouse way: code, name, message."""

    def __init__(self, code: int, name: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.name = name

    @classmethod
    def from_exception(cls, exc: BaseException) -> ClickHouseHTTPError:
        """Map a guard refusal or an engine message to a ClickHouse error."""
        if isinstance(exc, ClickHouseHTTPError):
            return exc
        if isinstance(exc, sqlguard.Refused | SettingRefused):
            return cls(exc.code, exc.name, str(exc))
        text = str(exc).strip()
        code = _CODE.search(text)
        name = _NAME.search(text)
        if code:
            # chDB nests "Code: N. DB::Exception:" prefixes; keep the innermost message.
            message = re.sub(r"^(Code: \d+\. DB::Exception: )+", "", text)
            message = re.sub(r"\s*\(version [^)]*\)\.?", "", message)
            while True:  # the nested messages repeat "(NAME)." at the end
                shorter = re.sub(r"\s*\([A-Z][A-Z0-9_]+\)\.?\s*$", "", message).rstrip(". ")
                if shorter == message:
                    break
                message = shorter
            return cls(int(code.group(1)), name.group(1) if name else "UNKNOWN", message)
        if "TOO_MANY_SIMULTANEOUS_QUERIES" in text:
            return cls(202, "TOO_MANY_SIMULTANEOUS_QUERIES", text)
        return cls(1002, "UNKNOWN_EXCEPTION", text or type(exc).__name__)

    @property
    def status(self) -> int:
        """The HTTP status ClickHouse gives for this code."""
        return _STATUS.get(self.code, 500)

    def body(self) -> bytes:
        """ClickHouse's error text."""
        text = str(self).rstrip(". ")
        return f"Code: {self.code}. DB::Exception: {text}. ({self.name}) (version {VERSION})\n"\
            .encode()


def auth_failed(user: str | None) -> ClickHouseHTTPError:
    """ClickHouse's answer to a wrong or missing password (516, HTTP 403)."""
    return ClickHouseHTTPError(
        516,
        "AUTHENTICATION_FAILED",
        f"{user or 'default'}: Authentication failed: password is incorrect, or there is no "
        "user with such name",
    )


def content_type(fmt: str) -> str:
    """The Content-Type ClickHouse sends for output format ``fmt``."""
    for prefix, value in _CONTENT_TYPES:
        if fmt.startswith(prefix):
            return value
    return "application/octet-stream"


class _Encoder:
    """Streaming response compression for one ``Accept-Encoding``."""

    def __init__(self, name: str | None) -> None:
        self.name = name
        self._gzip = self._zstd = self._lz4 = self._deflate = None
        if name == "gzip":
            self._gzip = zlib.compressobj(6, zlib.DEFLATED, 31)
        elif name == "deflate":
            self._deflate = zlib.compressobj(6)
        elif name == "zstd":
            from backports import zstd  # noqa: PLC0415 - only when asked for

            self._zstd = zstd.ZstdCompressor()
        elif name == "lz4":
            import lz4.frame  # noqa: PLC0415 - only when asked for

            self._lz4 = lz4.frame.LZ4FrameCompressor()
            self._lz4_started = False

    def feed(self, data: bytes) -> bytes:
        if self._gzip is not None:
            return self._gzip.compress(data)
        if self._deflate is not None:
            return self._deflate.compress(data)
        if self._zstd is not None:
            return self._zstd.compress(data)
        if self._lz4 is not None:
            head = b"" if self._lz4_started else self._lz4.begin()
            self._lz4_started = True
            return head + self._lz4.compress(data)
        return data

    def finish(self) -> bytes:
        if self._gzip is not None:
            return self._gzip.flush()
        if self._deflate is not None:
            return self._deflate.flush()
        if self._zstd is not None:
            return self._zstd.flush()
        if self._lz4 is not None:
            head = b"" if self._lz4_started else self._lz4.begin()
            return head + self._lz4.flush()
        return b""


def choose_encoding(accept: str | None) -> str | None:
    """The first encoding of ``Accept-Encoding`` this door can write (None: identity)."""
    for item in (accept or "").split(","):
        name = item.split(";", 1)[0].strip().lower()
        if name in ("gzip", "deflate", "zstd", "lz4"):
            return name
    return None


def decode_body(data: bytes, encoding: str | None) -> bytes:
    """Undo a request's ``Content-Encoding``."""
    name = (encoding or "").strip().lower()
    if not name or name == "identity":
        return data
    if name == "gzip":
        return gzip.decompress(data)
    if name == "deflate":
        return zlib.decompress(data)
    if name == "zstd":
        from backports import zstd  # noqa: PLC0415

        return zstd.decompress(data)
    if name == "lz4":
        import lz4.frame  # noqa: PLC0415

        return lz4.frame.decompress(data)
    raise ClickHouseHTTPError(
         166, "UNKNOWN_COMPRESSION_METHOD", f"Unknown compression method {encoding!r}"
    )


def form_fields(content_type: str, body: bytes) -> dict[str, str]:
    """The text fields of a ``multipart/form-data`` body (``query``, ``param_<name>``, …).

    Raises:
        ClickHouseHTTPError: a field carries a file (external data is not served).
    """
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if part.get_param("filename", header="content-disposition"):
            raise ClickHouseHTTPError(48, "NOT_IMPLEMENTED",
                                      "external data (file fields) is not served by this door")
        if name:
            payload = part.get_payload(decode=True) or b""
            fields[str(name)] = payload.decode("utf-8", errors="replace")
    return fields


class Door:
    """Runs the statements of one HTTP request on a fresh session of the store.

    Args:
        sessions: opens sessions on the chDB data path (None: no store to serve, /metrics only).
        credentials: who may connect.
        admin: False (reader: guard, read-only session, limits); True (DDL and inserts too).
        limits: the reader's limits.
        metrics: what ``/metrics`` serves: ``render() -> (Prometheus text, content type)`` and,
            for ``/metrics?format=json``, ``snapshot() -> dict`` (None: 404).
    """

    def __init__(
        self,
        sessions: Sessions | None,
        credentials: Credentials,
        admin: bool = False,
        limits: ReaderLimits | None = None,
        metrics: Any = None,
    ) -> None:
        self.sessions = sessions
        self.credentials = credentials
        self.admin = admin
        self.limits = limits or ReaderLimits()
        self.metrics = metrics
        self.queries = 0
        self.refused = 0
        self._table_functions: frozenset[str] | None = None

    def session_settings(self, requested: dict[str, str]) -> dict[str, Any]:
        """Settings of the request's session (the reader's limits and allowed choices)."""
        if self.admin:
            return dict(requested)
        return reader_settings(requested, self.limits)

    def prepare(self, conn: Any, sql: str, params: dict[str, str]) -> sqlguard.Checked:
        """Check a reader's statement with the engine's own parser (a no-op for admin)."""
        if self.admin:
            return sqlguard.Checked(sql.strip().rstrip(";"), "", None)

        def explain(statement: str) -> str:
            result = conn.query("EXPLAIN AST " + statement, "TSVRaw", params=params or None)
            return bytes(result.bytes()).decode()

        if self._table_functions is None:
            names = bytes(conn.query("SELECT name FROM system.table_functions", "TSVRaw").bytes())
            self._table_functions = frozenset(names.decode().lower().split())
        try:
            return sqlguard.check(sql, explain, self._table_functions)
        except sqlguard.Refused:
            self.refused += 1
            raise


class Server(ThreadingHTTPServer):
    """A ThreadingHTTPServer that knows its door."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], door: Door) -> None:
        self.door = door
        super().__init__(address, Handler)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class Handler(BaseHTTPRequestHandler):
    """One HTTP request in ClickHouse's dialect."""

    server: Server
    protocol_version = "HTTP/1.1"
    server_version = "stagelog"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        """Access lines go to the debug log."""
        log.debug("%s " + format, self.address_string(), *args)

    # ------------------------------------------------------------------ plumbing

    def _headers(self, status: int, ctype: str, extra: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("X-ClickHouse-Server-Display-Name", "stagelog")
        self.send_header("Keep-Alive", "timeout=10")
        for key, value in extra.items():
            self.send_header(key, value)

    def _plain(self, status: int, body: bytes, ctype: str = "text/plain; charset=UTF-8",
               extra: dict[str, str] | None = None) -> None:
        self._headers(status, ctype, extra or {})
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, error: ClickHouseHTTPError, query_id: str = "") -> None:
        extra = {"X-ClickHouse-Exception-Code": str(error.code)}
        if query_id:
            extra["X-ClickHouse-Query-Id"] = query_id
        if error.code in (516, 194):
            extra["WWW-Authenticate"] = 'Basic realm="stagelog"'
        self._plain(error.status, error.body(), extra=extra)

    def _credentials(self, params: dict[str, str]) -> tuple[str | None, str | None]:
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None, None
            return user, password
        user = self.headers.get("X-ClickHouse-User") or params.get("user")
        password = self.headers.get("X-ClickHouse-Key") or params.get("password")
        return user, password

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                total += size
                if not self.server.door.admin and total > MAX_QUERY_BYTES:
                    raise ClickHouseHTTPError(
                        1001, "QUERY_IS_TOO_LARGE",
                        f"a reader's request body is limited to {MAX_QUERY_BYTES} bytes")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            data = b"".join(chunks)
        else:
            size = int(length or 0)
            if not self.server.door.admin and size > MAX_QUERY_BYTES:
                raise ClickHouseHTTPError(
                    1001, "QUERY_IS_TOO_LARGE",
                    f"a reader's request body is limited to {MAX_QUERY_BYTES} bytes")
            data = self.rfile.read(size) if size else b""
        return decode_body(data, self.headers.get("Content-Encoding"))

    # ------------------------------------------------------------------ verbs

    def do_HEAD(self) -> None:
        """HEAD: as GET, without a body."""
        self.do_GET()

    def do_GET(self) -> None:
        """GET: ping, metrics, or a read-only query in ``query=``."""
        self._handle(post=False)

    def do_POST(self) -> None:
        """POST: a query in the body (or ``query=`` plus insert data, in admin mode)."""
        self._handle(post=True)

    def _handle(self, post: bool) -> None:
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        path = url.path.rstrip("/") or "/"
        door = self.server.door
        if path in ("/ping", "/replicas_status") or (path == "/" and not post
                                                      and "query" not in params):
            self._plain(200, b"Ok.\n")
            return
        if path == "/metrics" and door.metrics is not None:
            if params.get("format") == "json":
                body = json.dumps(door.metrics.snapshot()).encode()
                self._plain(200, body, "application/json")
            else:
                self._plain(200, *door.metrics.render())
            return
        if path not in ("/", "/query"):
            self._plain(404, f"There is no handle {url.path}\n".encode())
            return
        query_id = params.get("query_id") or str(uuid.uuid4())
        try:
            user, password = self._credentials(params)
            if not door.credentials.matches(user, password):
                raise auth_failed(user)
            body = self._read_body() if post else b""
            ctype = self.headers.get("Content-Type", "")
            if post and ctype.lower().startswith("multipart/form-data"):
                # clickhouse-connect sends long queries and parameters as form fields.
                params.update(form_fields(ctype, body))
                body = b""
            self._run(params, body, query_id)
        except Exception as exc:  # every failure is answered the ClickHouse way
            error = ClickHouseHTTPError.from_exception(exc)
            if error.code == 1002:
                log.exception("query door: unexpected failure")
            else:
                log.info("query door refused or failed (%s %d): %s", error.name, error.code, error)
            self._error(error, query_id)

    def _run(self, params: dict[str, str], body: bytes, query_id: str) -> None:
        door = self.server.door
        settings = {
            k: v for k, v in params.items() if k not in _TRANSPORT and not k.startswith("param_")
        }
        bound = {k[len("param_"):]: v for k, v in params.items() if k.startswith("param_")}
        text = params.get("query", "")
        insert = _INSERT.match(text) if door.admin and body else None
        if door.admin and body and not insert and not text:
            # clickhouse-connect sends "INSERT … FORMAT Native\n" and the data in one body.
            head = _INSERT_HEAD.match(body[:65536].decode("latin-1"))
            if head:
                insert = _INSERT.match(head.group("statement"))
                body = body[head.end():]
        if not insert and body:
            text = f"{text}\n{body.decode('utf-8', errors='replace')}" if text else body.decode(
                "utf-8", errors="replace")
        if not insert and not text.strip():
            raise ClickHouseHTTPError(62, "SYNTAX_ERROR", "Empty query")
        fmt = params.get("default_format") or "TabSeparated"
        started = time.monotonic()
        if door.sessions is None:
            raise ClickHouseHTTPError(
                48, "NOT_IMPLEMENTED",
                "this collector ships to a ClickHouse server: query the server at its DSN")
        with door.sessions.open(door.session_settings(settings), params.get("database"),
                                readonly=not door.admin) as conn:
            if insert:
                rows = self._insert(conn, insert, body)
                self._plain(200, b"", extra=self._meta(query_id, fmt, started, written=rows))
                return
            checked = door.prepare(conn, text, bound)
            fmt = checked.output_format or fmt
            door.queries += 1
            if not _streams(checked.sql):
                # chDB streams SELECT only: DDL, SHOW, DESCRIBE, EXPLAIN (all small) run whole.
                result = conn.query(checked.sql, fmt, params=bound or None)
                self._plain(200, bytes(result.bytes()), content_type(fmt),
                            self._meta(query_id, fmt, started))
                return
            if not _CONCATENATES.match(fmt) and not _HEADERED.match(fmt):
                # chDB writes each streamed block as a whole document in these formats (JSON,
                # Parquet, Arrow, Pretty, …): run the query whole, bounded by max_result_bytes.
                result = conn.query(checked.sql, fmt, params=bound or None)
                self._plain(200, bytes(result.bytes()), content_type(fmt),
                            self._meta(query_id, fmt, started))
                return
            stream = conn.send_query(checked.sql, fmt, params=bound or None)
            self._stream(stream, fmt, query_id, started)

    def _insert(self, conn: Any, match: re.Match[str], body: bytes) -> int:
        target, fmt = match.group("target"), match.group("fmt")
        query = f"INSERT INTO {target}"
        if match.group("settings"):
            query += f" SETTINGS {match.group('settings')}"
        with conn.send_insert(query, fmt) as inserter:
            for start in range(0, len(body), 1 << 20):
                inserter.append(body[start:start + (1 << 20)])
            result = inserter.finish()
        return int(getattr(result, "rows_written", 0) or 0)

    def _meta(self, query_id: str, fmt: str, started: float, written: int = 0) -> dict[str, str]:
        summary = {
            "read_rows": "0", "read_bytes": "0", "written_rows": str(written),
            "written_bytes": "0", "total_rows_to_read": "0", "result_rows": "0",
            "result_bytes": "0", "elapsed_ns": str(int((time.monotonic() - started) * 1e9)),
        }
        return {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Format": fmt,
            "X-ClickHouse-Timezone": "UTC",
            "X-ClickHouse-Summary": json.dumps(summary, separators=(",", ":")),
        }

    def _stream(self, stream: Any, fmt: str, query_id: str, started: float) -> None:
        headered = _HEADERED.match(fmt)
        header_lines = 0 if not headered else (2 if headered.group(2) else 1)
        chunks = _chunks(stream, header_lines)
        try:
            first = next(chunks, b"")  # errors at the start still get a proper status
        except Exception:
            stream.close()
            raise
        encoder = _Encoder(choose_encoding(self.headers.get("Accept-Encoding")))
        extra = self._meta(query_id, fmt, started)
        if encoder.name:
            extra["Content-Encoding"] = encoder.name
        self._headers(200, content_type(fmt), extra)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            self._chunk(encoder.feed(first))
            for data in chunks:
                self._chunk(encoder.feed(data))
            self._chunk(encoder.finish())
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            log.info("query door: client of %s went away; query cancelled", query_id)
            stream.cancel()
            self.close_connection = True
        except Exception as exc:  # after the headers: say so in the body, then hang up
            error = ClickHouseHTTPError.from_exception(exc)
            self._chunk(encoder.feed(b"\n" + error.body()) + encoder.finish())
            self.close_connection = True
        finally:
            stream.close()

    def _chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")


def _streams(sql: str) -> bool:
    words = sqlguard.strip_comments(sql).lstrip("( \t\r\n").split(None, 1)
    return bool(words) and words[0].upper() in ("SELECT", "WITH")


def _chunks(stream: Any, header_lines: int = 0) -> Iterator[bytes]:
    """The result's bytes, block by block; the header lines only once (chDB repeats them)."""
    first = True
    for chunk in stream:
        data = bytes(chunk.bytes())
        if not first and header_lines:
            data = data.split(b"\n", header_lines)[-1] if data.count(b"\n") >= header_lines \
                else b""
        first = False
        if data:
            yield data


def serve(door: Door, port: int = 0, host: str = "127.0.0.1") -> Server:
    """Start the door's HTTP server in a daemon thread and return it."""
    server = Server((host, port), door)
    threading.Thread(target=server.serve_forever, name="stagelog-door", daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> int:
    """``python -m logging_backend.collector.endpoint --admin --path DIR``: an admin-mode server."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--admin", action="store_true", required=True,
                        help="serve DDL and inserts too (a test stand-in for a ClickHouse server)")
    parser.add_argument("--path", required=True, type=Path, help="its own chDB data directory")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password-file", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import chdb  # noqa: PLC0415

    args.path.mkdir(parents=True, exist_ok=True)
    holder = chdb.connect(str(args.path))  # the process's own hold on the store
    password = args.password_file.read_text(encoding="utf-8").strip()
    door = Door(Sessions(str(args.path), max_sessions=8), Credentials(args.user, password),
                admin=True)
    server = serve(door, args.port)
    print(f"listening on {server.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        holder.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
