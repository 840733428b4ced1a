"""Servers that run the ASGI layer: the built-in HTTP/1.1 and websocket server
(:mod:`.builtin`), uvicorn (:mod:`.uvicorn`) and granian (:mod:`.granian`), and the
listening-socket helper they share (:mod:`.listening`)."""
