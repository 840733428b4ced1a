"""SockJS-compatible real-time server for aiohttp."""
