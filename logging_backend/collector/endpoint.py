"""The collector's query endpoint: JSON over HTTP on 127.0.0.1 (see the collector's docstring)."""

from __future__ import annotations

import json
import logging
from http.server import BaseHTTPRequestHandler
from typing import Any

from logging_backend.errors import StoreError

log = logging.getLogger("stagelog.collector")

MAX_REQUEST_BYTES = 1 << 20


def make_handler(collector: Any) -> type[BaseHTTPRequestHandler]:
    """The request handler class of ``collector``'s endpoint (``health()``, ``query()``)."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "stagelog-collector"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            log.debug("query endpoint: " + format, *args)

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, message: str) -> None:
            self._send(status, json.dumps({"error": message}).encode(), "application/json")

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/health":
                self._send(200, json.dumps(collector.health()).encode(), "application/json")
            else:
                self._error(404, f"no such endpoint {self.path}; use /health or POST /query")

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/query":
                self._error(404, f"no such endpoint {self.path}; use POST /query")
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length <= 0 or length > MAX_REQUEST_BYTES:
                self._error(400, f"request body must be 1..{MAX_REQUEST_BYTES} bytes of JSON")
                return
            try:
                body = json.loads(self.rfile.read(length))
                sql = body["query"]
                params = body.get("params") or {}
                fmt = body.get("format") or "TSVWithNames"
                if not isinstance(sql, str) or not isinstance(params, dict):
                    raise TypeError
            except (ValueError, KeyError, TypeError):
                self._error(400, 'body must be {"query": str, "params": {...}, "format": str}')
                return
            try:
                result = collector.query(sql, params, str(fmt))
            except StoreError as exc:
                self._error(400, str(exc))
                return
            self._send(200, result, "application/octet-stream")

    return Handler
