"""Per-transport cases for benchmarks/transports.py.

Each module ``<scheme>.py`` here provides::

    URL: str                                            # default loopback URL
    async def ours(url: str, n: int, size: int) -> tuple[float, float]
    async def raw(url: str, n: int, size: int) -> tuple[float, float]

returning (publish msg/s with broker confirmation, pipelined; consume msg/s with ack)
for Servicewire's transport and for the raw client library doing the same work.
"""
