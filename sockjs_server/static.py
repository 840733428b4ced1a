"""The endpoint's fixed pages: the greeting, ``/info`` and the iframe page."""

from __future__ import annotations

import hashlib
import html
import json
import secrets

from aiohttp import web

from .endpoint import Endpoint
from .http import NO_CACHE, NOSNIFF, TEXT_PLAIN, cached_for_a_year, cors_headers

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


async def greeting(request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
    return web.Response(body=GREETING, headers={"Content-Type": TEXT_PLAIN})


async def info(request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
    """Server capabilities; sockjs-client also uses this request to measure the round trip."""
    options = endpoint.options
    body = {
        "websocket": options.transport_enabled("websocket"),
        "cookie_needed": options.cookie_needed,
        "origins": ["*:*"],
        "entropy": secrets.randbits(32),
    }
    headers = cors_headers(request, options)
    headers.update(NO_CACHE)
    headers["Content-Type"] = "application/json; charset=UTF-8"
    return web.Response(body=json.dumps(body).encode(), headers=headers)


class IframePage:
    """The page iframe-based transports load from the server's origin; cached with an ETag."""

    def __init__(self, sockjs_url: str) -> None:
        self.body = _IFRAME_PAGE.format(sockjs_url=html.escape(sockjs_url, quote=True)).encode()
        self.etag = '"' + hashlib.sha256(self.body).hexdigest()[:32] + '"'

    def response(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("If-None-Match") == self.etag:
            return web.Response(status=304, headers={"ETag": self.etag})
        headers = cached_for_a_year()
        headers["ETag"] = self.etag
        headers["Content-Type"] = "text/html; charset=UTF-8"
        headers.update(NOSNIFF)
        return web.Response(body=self.body, headers=headers)
