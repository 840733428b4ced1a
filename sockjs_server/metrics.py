"""Operational figures: a plain :func:`stats` dict, and Prometheus text at a URL you choose.

Endpoints and STOMP servers count into plain ``int`` fields as they run
(:mod:`.stats`); nothing here runs on the hot path. :func:`stats` reads them,
and :class:`SockJSCollector` turns the same figures into Prometheus metric
families when a scrape asks, so the server never calls prometheus_client
between scrapes. prometheus_client is the optional extra ``metrics``
(``bash .ci/venv metrics`` in a checkout); :func:`stats` needs nothing.

    add_metrics_route(app, "/metrics")      # every endpoint of app, and their STOMP servers
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Union

from aiohttp import web

from .aiohttp.routes import ENDPOINTS
from .core.extras import install_hint
from .runtime.endpoint import Endpoint
from .runtime.stats import HANDLER_FIGURES

if TYPE_CHECKING:
    from prometheus_client.core import Metric
    from prometheus_client.registry import CollectorRegistry

__all__ = ["METRICS_EXTRA", "MetricsApp", "SockJSCollector", "add_metrics_route", "endpoint_stats", "stats"]

METRICS_EXTRA = install_hint("metrics")
"""How to get prometheus_client (quoted in errors)."""


def endpoint_stats(endpoint: Endpoint) -> dict[str, Any]:
    """:meth:`Endpoint.stats`, plus the figures its handler keeps of its own under the key its
    part of the package registered (``stomp``: :meth:`StompServer.stats`)."""
    figures: dict[str, Any] = endpoint.stats()
    for key, (read, _build) in HANDLER_FIGURES.items():
        handler_figures = read(endpoint.handler)
        if handler_figures is not None:
            figures[key] = handler_figures
    return figures


Source = Union[web.Application, Iterable[Any]]
"""Where the endpoints are: an aiohttp application (every endpoint mounted on it), or
ASGI :class:`~sockjs_server.asgi.SockJSApp` objects (anything with an ``endpoint``) or
:class:`~sockjs_server.runtime.endpoint.Endpoint` objects."""


def _endpoints(source: Source) -> list[Endpoint]:
    if isinstance(source, web.Application):
        return list(source.get(ENDPOINTS, ()))
    items: Iterable[Any] = source
    return [item if isinstance(item, Endpoint) else item.endpoint for item in items]


def stats(app: Source) -> dict[str, dict[str, Any]]:
    """Every endpoint of ``app`` (an aiohttp application, or ASGI ``SockJSApp`` objects), by
    prefix: counters and current gauges as plain data."""
    return {endpoint.prefix: endpoint_stats(endpoint) for endpoint in _endpoints(app)}


def _import_prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise ImportError(f"metrics in Prometheus' format need prometheus_client: {METRICS_EXTRA}") from None
    return prometheus_client


class SockJSCollector:
    """A prometheus_client collector reading :func:`stats` of ``app`` (an aiohttp
    application, or ASGI ``SockJSApp`` objects) at scrape time.

    Register it in any ``CollectorRegistry`` (``registry.register(SockJSCollector(app))``);
    :func:`add_metrics_route` does that for you.
    """

    def __init__(self, app: Source) -> None:
        _import_prometheus()
        # A one-shot iterable would be empty at the second scrape.
        self.app: Source = app if isinstance(app, web.Application) else tuple(app)

    def describe(self) -> list[Metric]:
        # Nothing to check at registration: the families depend on what is mounted.
        return []

    def collect(self) -> Iterator[Metric]:
        return iter(_families(stats(self.app)))


def _families(figures: Mapping[str, Mapping[str, Any]]) -> list[Metric]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    def gauge(name: str, doc: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, labels=["endpoint", *labels])

    def counter(name: str, doc: str, labels: Iterable[str] = ()) -> CounterMetricFamily:
        return CounterMetricFamily(name, doc, labels=["endpoint", *labels])

    open_ = gauge("sockjs_sessions_open", "Open SockJS sessions by transport.", ["transport"])
    opened = counter("sockjs_sessions_opened", "SockJS sessions created, by transport.", ["transport"])
    closed = counter("sockjs_sessions_closed", "SockJS sessions ended, by close code.", ["code"])
    msg_in = counter("sockjs_messages_in", "Client messages received.")
    bytes_in = counter("sockjs_in_bytes", "Size of client messages as received (JSON text, or binary bytes).")
    msg_out = counter("sockjs_messages_out", "Messages queued for clients (a broadcast counts per session).")
    bytes_out = counter("sockjs_out_bytes", "Encoded size of the messages queued for clients.")
    queued = gauge("sockjs_queued_bytes", "Bytes queued for clients now, all sessions together.")
    high = gauge("sockjs_queued_bytes_high_water", "Most bytes one session has held queued.")
    slow = counter(
        "sockjs_slow_consumer_closes",
        'Sessions closed with 3001 for a client that did not keep up, by the limit it ran into: max_queue'
        ' ("Send queue overflow": max_queue_bytes or max_queue_messages) or send_timeout ("Slow consumer":'
        " nothing taken for send_timeout).",
        ["limit"],
    )
    errors = counter("sockjs_request_errors", "Error answers (HTTP status >= 400), by status.", ["status"])
    families: list[Metric] = [open_, opened, closed, msg_in, bytes_in, msg_out, bytes_out, queued, high, slow, errors]
    for prefix, fig in figures.items():
        e = [prefix]
        for transport, n in sorted(fig["sessions_open"].items()):
            open_.add_metric([*e, transport], n)
        for transport, n in sorted(fig["sessions_opened"].items()):
            opened.add_metric([*e, transport], n)
        for code, n in sorted(fig["sessions_closed"].items()):
            closed.add_metric([*e, str(code)], n)
        msg_in.add_metric(e, fig["messages_in"])
        bytes_in.add_metric(e, fig["bytes_in"])
        msg_out.add_metric(e, fig["messages_out"])
        bytes_out.add_metric(e, fig["bytes_out"])
        queued.add_metric(e, fig["queued_bytes"])
        high.add_metric(e, fig["queued_bytes_high_water"])
        for limit, n in sorted(fig["slow_consumer_closes_by_limit"].items()):
            slow.add_metric([*e, limit], n)
        for status, n in sorted(fig["request_errors"].items()):
            errors.add_metric([*e, str(status)], n)
    for key, (_read, build) in HANDLER_FIGURES.items():
        rows = [([prefix], fig[key]) for prefix, fig in figures.items() if key in fig]
        if rows and build is not None:
            families += build(rows, gauge, counter)
    return families


def add_metrics_route(
    app: web.Application, path: str = "/metrics", *, registry: CollectorRegistry | None = None
) -> CollectorRegistry:
    """Serve Prometheus' text format at ``path`` (GET) for every endpoint of ``app``.

    The figures come from a :class:`SockJSCollector` registered in ``registry``
    (a new one holding also prometheus_client's process and platform
    collectors, by default; pass your own, e.g. ``prometheus_client.REGISTRY``,
    to expose your application's metrics at the same URL). Returns the registry.
    Needs prometheus_client (the ``metrics`` extra, :data:`METRICS_EXTRA`).
    """
    if not path.startswith("/"):
        raise ValueError(f"the metrics path must start with '/': {path!r}")
    registry = _registry_for(app, registry)
    from prometheus_client.exposition import choose_encoder

    async def metrics(request: web.Request) -> web.Response:
        # The format the scraper asks for (Prometheus text, or OpenMetrics).
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encode(registry), headers={"Content-Type": content_type})

    app.router.add_get(path, metrics)
    return registry


def _registry_for(app: Source, registry: CollectorRegistry | None) -> CollectorRegistry:
    prometheus = _import_prometheus()
    if registry is None:
        registry = prometheus.CollectorRegistry()
        prometheus.ProcessCollector(registry=registry)
        prometheus.PlatformCollector(registry=registry)
    registry.register(SockJSCollector(app))
    return registry


class MetricsApp:
    """An ASGI application answering ``GET`` with Prometheus' text format for ASGI endpoints.

    Mount it where you like (``app.mount("/metrics", MetricsApp([chat, echo]))`` in
    Starlette/FastAPI, or as the ``fallback`` of a
    :class:`~sockjs_server.asgi.SockJSRouter` with ``path="/metrics"``). ``path``
    (optional) is the only path it answers; others get 404. The registry is as for
    :func:`add_metrics_route`. Needs prometheus_client.
    """

    def __init__(self, apps: Iterable[Any], *, path: str | None = None, registry: CollectorRegistry | None = None) -> None:
        if path is not None and not path.startswith("/"):
            raise ValueError(f"the metrics path must start with '/': {path!r}")
        self.path = path
        self.registry = _registry_for(apps, registry)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            # Nothing to start or stop: answer the protocol so that servers go on.
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if kind == "websocket":
            await receive()
            await send({"type": "websocket.close", "code": 1008})
            return
        if kind != "http":
            return
        if self.path is not None and scope["path"] != self.path:
            await _plain(send, 404, b"Not Found")
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _plain(send, 405, b"Method Not Allowed", [(b"allow", b"GET, HEAD")])
            return
        from prometheus_client.exposition import choose_encoder

        accept = ""
        for name, value in scope.get("headers", ()):
            if name.lower() == b"accept":
                accept = value.decode("latin-1")
        encode, content_type = choose_encoder(accept)
        body = encode(self.registry)
        headers = [(b"content-type", content_type.encode("latin-1")), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


async def _plain(send: Any, status: int, text: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(text)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": text})
