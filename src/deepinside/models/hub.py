"""Hub access: without a route to the Hugging Face hub, only its local cache is used."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["hub_offline_unless_reachable", "reachable"]


def reachable(host: str) -> bool:
    """Whether ``host`` resolves (a DNS look-up; no connection is made)."""
    import socket

    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False


@contextlib.contextmanager
def hub_offline_unless_reachable(host: str) -> Iterator[None]:
    """Without a route to the hub, use only its local cache (no minute of retries)."""
    if reachable(host):
        yield
        return
    import huggingface_hub.constants as hub

    saved = hub.HF_HUB_OFFLINE
    hub.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = saved
