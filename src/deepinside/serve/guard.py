"""The checks every request passes before any route: Host, Origin, token, body size.

- ``Host`` must name an allowed address (default: the bound address, ``localhost``,
  ``127.0.0.1``, ``[::1]``), else 400: a DNS-rebinding page cannot reach a local server.
- A state-changing request (``POST``, ``PUT``, ``PATCH``, ``DELETE``) with an ``Origin`` other
  than the server's own is refused (403) unless ``--cors-origin`` allows it: another site
  cannot queue work in the user's browser (a ``text/plain`` POST needs no preflight).
- ``/v1`` needs ``Authorization: Bearer <token>`` when the server has a token (the scheme's case
  does not matter; the token is compared in constant time).
- The body is read into memory up to ``max_body`` bytes whatever its transfer encoding
  (``Content-Length`` or chunked), else 413; routes then read it from memory.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from .problems import problem_response

__all__ = ["Guard", "host_name"]

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def host_name(host: str) -> str:
    """``"Example.com:8000"`` -> ``"example.com"``, ``"[::1]:80"`` -> ``"::1"``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Guard:
    """ASGI middleware: the Host, Origin, token and body-size checks (see the module)."""

    def __init__(self, app, *, allowed_hosts: Iterable[str], cors_origins: Iterable[str],
                 token: str | None, max_body: int) -> None:
        self.app = app
        self.hosts = {host_name(h) for h in allowed_hosts}
        self.origins = {o.rstrip("/").lower() for o in cors_origins}
        self.token = token
        self.max_body = max_body

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", ())}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            return await refusal(scope, receive, send)
        body, too_large = await self._read_body(receive, headers)
        if too_large:
            return await problem_response(413, "Request too large", f"the body has more than "
                                          f"{self.max_body} bytes")(scope, receive, send)
        done = False

        async def replay():
            nonlocal done
            if not done:
                done = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # http.disconnect, for streaming responses

        await self.app(scope, replay, send)

    def _refusal(self, scope, headers: dict[str, str]):
        host = headers.get("host", "")
        if "*" not in self.hosts and host_name(host) not in self.hosts:
            return problem_response(400, "Host not allowed", f"this server does not answer to "
                                    f"the host {host_name(host)!r} (see --allowed-hosts)")
        origin = headers.get("origin")
        if scope["method"] in UNSAFE and origin is not None:
            own = f"{scope.get('scheme', 'http')}://{host}".lower()
            if origin.rstrip("/").lower() != own and origin.rstrip("/").lower() not in \
                    self.origins and "*" not in self.origins:
                return problem_response(403, "Cross-site request refused",
                                        f"a {scope['method']} from {origin!r} is refused (see "
                                        "--cors-origin)")
        elif scope["method"] in UNSAFE and headers.get("sec-fetch-site") == "cross-site" \
                and "*" not in self.origins:
            return problem_response(403, "Cross-site request refused",
                                    "a cross-site request without an Origin is refused")
        if self.token is not None and scope["path"].startswith("/v1"):
            scheme, _, given = headers.get("authorization", "").strip().partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                    given.strip().encode(), self.token.encode()):
                return problem_response(401, "Unauthorized", "this server needs the header "
                                        "'Authorization: Bearer <token>'",
                                        {"WWW-Authenticate": "Bearer"})
        return None

    async def _read_body(self, receive, headers: dict[str, str]) -> tuple[bytes, bool]:
        size = headers.get("content-length", "")
        if size.isdigit() and int(size) > self.max_body:
            return b"", True  # refused before reading
        parts, total = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # disconnected
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_body:
                return b"", True
            parts.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(parts), False
