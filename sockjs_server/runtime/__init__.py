"""The asyncio runtime shared by every web layer: sessions and their receivers,
endpoints, the transport loops (pump), counters and eager task starts.

No web framework here: the aiohttp and ASGI layers call into it.
"""
