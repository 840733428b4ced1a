"""The aiohttp web layer: routes of an endpoint (:func:`~.routes.add_endpoint`),
HTTP transports and websockets on aiohttp's request and response objects.

This package is named after the framework it adapts; ``import aiohttp`` inside it
still means the framework (imports are absolute).
"""
