"""The SockJS protocol without I/O: framing, per-transport envelopes, the session
state machine, options, HTTP answers, static pages and URL dispatch.

Standard library only (no event loop, no web framework): every module here is
tested with plain bytes and values, and every layer above builds on it.
"""
