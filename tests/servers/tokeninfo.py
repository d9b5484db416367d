"""A local OAuth2 tokeninfo endpoint: answers {"username": ...} for the tokens it was given.

Dovecot's oauth2 passdb asks it to validate XOAUTH2 bearer tokens, standing in for the identity
provider (Microsoft Entra, Google) whose access tokens a token-provider callable would hand out.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class TokenInfoServer:
    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}
        tokens = self.tokens

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802  (http.server's naming)
                token = parse_qs(urlparse(self.path).query).get("access_token", [""])[0]
                user = tokens.get(token)
                status, body = (200, {"username": user, "active": True}) if user else (401, {"error": "invalid_token"})
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_: object) -> None:
                """Tokens are secrets; keep them out of test output."""

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_port}/tokeninfo?access_token="
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
