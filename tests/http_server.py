"""A real HTTP server on loopback for the HTTP tools' tests (stdlib ``http.server`` in a thread).

Routes (by path):

- ``/echo`` (and ``/echo/...``): 200 JSON of what came: method, path, query (raw), headers, body (text).
- ``/json``: 200 ``{"current": {...}, "hourly": {"time": [...]}}``.
- ``/text``: 200 ``text/plain``; ``/html``: 200 ``text/html`` (not JSON).
- ``/status/NNN``: that status, with a body that echoes the request's headers.
- ``/hang``: never answers (until the server stops).
- ``/slow``: headers at once, then one byte every 0.1 s for a long time.
- ``/huge``: 3 MB of JSON-ish bytes, no Content-Length; ``/huge-declared``: a
  Content-Length of 100 MB (and a short body).
- ``/redirect?to=URL``: 302 to URL; ``/loop``: 302 to itself.
- ``/v1/search``, ``/v1/forecast``: an Open-Meteo stand-in (geocoding and forecast).

Every request is recorded in ``requests`` (method, path, headers) for the tests to check
what reached this server.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PLACE = {"name": "Porto", "country": "Portugal", "latitude": 41.14961, "longitude": -8.61099,
         "timezone": "Europe/Lisbon"}
CURRENT = {"time": "2026-12-03T10:00", "interval": 900, "temperature_2m": 14.2, "wind_speed_10m": 11.5,
           "weather_code": 3}


class LoopbackServer:
    """The server, served by a daemon thread from :meth:`start` to :meth:`close`."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.stop = threading.Event()
        owner = self

        class Handler(_Handler):
            server_owner = owner

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> None:
        """Serve, in a daemon thread."""
        self.thread.start()

    def close(self) -> None:
        """Stop serving (requests still waiting end) and free the port."""
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    server_owner: LoopbackServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def do_PUT(self) -> None:
        self._route()

    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _route(self) -> None:
        owner = self.server_owner
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        headers = {k.lower(): v for k, v in self.headers.items()}
        owner.requests.append({"method": self.command, "path": parts.path, "query": parts.query,
                               "headers": headers, "body": body})
        query = parse_qs(parts.query)
        path = parts.path
        if path.startswith("/echo"):
            echoed = {"method": self.command, "path": path, "query": parts.query, "headers": headers, "body": body}
            self._send(200, json.dumps(echoed).encode())
        elif path == "/json":
            self._send(200, json.dumps({"current": CURRENT, "hourly": {"time": ["t0", "t1"]}}).encode())
        elif path == "/text":
            self._send(200, ("line of text\n" * 1000).encode(), "text/plain; charset=utf-8")
        elif path == "/html":
            self._send(200, b"<html><body>Service page</body></html>", "text/html")
        elif path.startswith("/status/"):
            status = int(path.rsplit("/", 1)[1])
            self._send(status, json.dumps({"message": "nope", "you_sent": headers}).encode())
        elif path == "/hang":
            owner.stop.wait(30)
        elif path == "/slow":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.flush()
            for _ in range(300):
                if owner.stop.wait(0.1):
                    return
                try:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                except OSError:
                    return
        elif path == "/huge":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                for _ in range(30):
                    self.wfile.write(b"[" + b"1," * 50_000 + b"1]")
            except OSError:
                return
        elif path == "/huge-declared":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(100_000_000))
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                self.wfile.write(b"[1,2,3")
            except OSError:
                return
        elif path == "/redirect":
            self._send(302, b"", headers={"Location": query["to"][0]})
        elif path == "/loop":
            self._send(302, b"", headers={"Location": "/loop"})
        elif path == "/v1/search":
            found = query.get("name", [""])[0].lower() == "porto"
            self._send(200, json.dumps({"results": [PLACE]} if found else {"generationtime_ms": 0.5}).encode())
        elif path == "/v1/forecast":
            self._send(200, json.dumps({"latitude": float(query["latitude"][0]),
                                        "longitude": float(query["longitude"][0]), "current": CURRENT}).encode())
        else:
            self._send(404, b'{"error": "no such route"}')
