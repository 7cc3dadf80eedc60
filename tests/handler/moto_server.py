"""A moto server on loopback, for the tests that reach S3 (and other services) over HTTP."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from moto.server import ThreadedMotoServer


@contextlib.contextmanager
def running(port: int = 0) -> Iterator[str]:
    """A moto server on ``port`` of 127.0.0.1 (0: a free one) while inside; its endpoint URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        host, bound = server.get_host_and_port()
        yield f"http://{host}:{bound}"
    finally:
        server.stop()
