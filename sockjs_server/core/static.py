"""The endpoint's fixed pages: the greeting, ``/info`` and the iframe page, as answers of any web layer."""

from __future__ import annotations

import hashlib
import html
import json
import secrets

from .http import NO_CACHE, NOSNIFF, TEXT_PLAIN, Answer, RequestHead, cached_for_a_year, cors_headers
from .options import Options

__all__ = ["GREETING", "IframePage", "greeting", "info"]

GREETING = b"Welcome to SockJS!\n"

_IFRAME_PAGE = """<!DOCTYPE html>
<html>
<head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
  <script src="{sockjs_url}"></script>
  <script>
    document.domain = document.domain;
    SockJS.bootstrap_iframe();
  </script>
</head>
<body>
  <h2>Don't panic!</h2>
  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>
</body>
</html>"""


def greeting() -> Answer:
    return Answer(200, {"Content-Type": TEXT_PLAIN}, GREETING)


def info(request: RequestHead, options: Options) -> Answer:
    """Server capabilities; sockjs-client also uses this request to measure the round trip."""
    body = {
        "websocket": options.transport_enabled("websocket"),
        "cookie_needed": options.cookie_needed,
        "origins": ["*:*"],
        "entropy": secrets.randbits(32),
    }
    headers = cors_headers(request, options)
    headers.update(NO_CACHE)
    headers["Content-Type"] = "application/json; charset=UTF-8"
    return Answer(200, headers, json.dumps(body).encode())


class IframePage:
    """The page iframe-based transports load from the server's origin; cached with an ETag."""

    def __init__(self, options: Options) -> None:
        self.body = _IFRAME_PAGE.format(sockjs_url=html.escape(options.sockjs_url, quote=True)).encode()
        self.etag = '"' + hashlib.sha256(self.body).hexdigest()[:32] + '"'
        allowed = options.allowed_origins
        self.frame_ancestors: str | None = None
        if allowed is not None and "*" not in allowed:
            # Only allowed origins may embed the page that relays for them.
            self.frame_ancestors = "frame-ancestors " + " ".join(["'self'", *sorted(allowed)])

    def answer(self, request: RequestHead) -> Answer:
        if request.headers.get("If-None-Match") == self.etag:
            headers = {"ETag": self.etag}
            body = b""
        else:
            headers = cached_for_a_year()
            headers["ETag"] = self.etag
            headers["Content-Type"] = "text/html; charset=UTF-8"
            headers.update(NOSNIFF)
            body = self.body
        if self.frame_ancestors is not None:
            headers["Content-Security-Policy"] = self.frame_ancestors
        return Answer(304 if not body else 200, headers, body)
