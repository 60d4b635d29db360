"""Which Ray a run uses, and joining it within a bounded time or failing in one line.

Which Ray (the first that applies):

1. ``address`` (``--ray-address``): ``HOST:PORT``, the head's GCS port (what
   ``ray start --head --port`` was given, 6379 by default); ``auto``, as Ray means it:
   ``RAY_ADDRESS`` if it is set, else the cluster that ``ray start`` last started on this
   machine, else the one Ray running on this machine; or ``ray://HOST:10001`` (Ray Client,
   ``pip install 'ray[client]'``).
2. ``RAY_ADDRESS``, when ``address`` is not given (what ``ray job submit`` gives the command
   it runs).
3. Else a new local Ray on this machine's cores, stopped at the end of the run (not the one
   ``ray start`` may have left running here: ``ray.init()`` alone would join that one).

Joining a cluster never passes ``num_cpus`` or an object store size (the cluster has its own).
Before ``ray.init`` the address is probed, all within ``timeout`` seconds: a TCP connection
(nothing listening, an unreachable host), an HTTP/2 preface (a gRPC server such as Ray's GCS
answers with a SETTINGS frame; the dashboard's HTTP port or another service does not), then
Ray's GCS (token authentication, the Ray and Python versions of the cluster against this
process's). Each failure is a
:class:`RayConnectError` whose message is one line naming the address and the likely cause,
instead of Ray's retries (a wrong address otherwise hangs for many minutes) and tracebacks.

Token authentication (Ray >= 2.52): ``ray start --head`` turns it on when a token exists
(``~/.ray/auth_token``, ``ray get-auth-token --generate``); a process that joins an explicit
address must then run with ``RAY_AUTH_MODE=token`` and the same token, read from
``RAY_AUTH_TOKEN``, else the file ``RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator

__all__ = ["DEFAULT_TIMEOUT", "OBJECT_STORE_BYTES", "RayConnectError", "connect_ray",
           "describe_cluster", "filter_stderr", "quiet_stderr", "resolve_address"]

DEFAULT_TIMEOUT = 30.0
OBJECT_STORE_BYTES = 512 * 1024**2  # a local Ray's object store
TOKEN_FILE = "~/.ray/auth_token"


class RayConnectError(ConnectionError):
    """Ray cannot be joined; the message is one line: the address and the likely cause."""


def resolve_address(address: str | None) -> tuple[str | None, str]:
    """``(address, where it came from)``: ``address`` if given, else ``RAY_ADDRESS``, else
    ``(None, "")`` (a local Ray). The origin is ``""`` or ``" (from RAY_ADDRESS)"``; ``auto``
    is returned as it is (Ray resolves it, see :func:`connect_ray`)."""
    if address:
        return address, ""
    env = os.environ.get("RAY_ADDRESS", "").strip()
    if env:
        return env, " (from RAY_ADDRESS)"
    return None, ""


def _token_source() -> str:
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return os.environ["RAY_AUTH_TOKEN_PATH"]
    return TOKEN_FILE


def _auth_hint() -> str:
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
        return (f"the cluster refused this process's authentication token (read from "
                f"{_token_source()}); use the head's token (`ray get-auth-token` on the head "
                f"prints it; put it in {TOKEN_FILE} or RAY_AUTH_TOKEN_PATH)")
    return ("the cluster requires token authentication: run with RAY_AUTH_MODE=token and the "
            f"cluster's token in {TOKEN_FILE} (or a file named by RAY_AUTH_TOKEN_PATH, or "
            "RAY_AUTH_TOKEN); `ray get-auth-token` on the head prints it")


def _saved_stderr() -> int | None:
    """A duplicate of file descriptor 2 (``sys.stderr`` flushed first), or ``None`` where it is
    not a real file (as under some test runners)."""
    try:
        sys.stderr.flush()
        return os.dup(2)
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """File descriptor 2 goes to a temporary file for the duration (Ray's C++ core writes its
    warnings there, past Python's ``sys.stderr``); nothing is shown."""
    saved = _saved_stderr()
    if saved is None:
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


@contextlib.contextmanager
def filter_stderr(noise: tuple[bytes, ...]) -> Iterator[None]:
    """For the duration, the lines written to file descriptor 2 that contain one of ``noise``
    are dropped (Ray's C++ core logs there, past Python's ``sys.stderr``); everything else
    passes at once, a progress bar's partial lines included. Child processes started meanwhile
    write through the filter too. Does nothing where fd 2 is not a real file."""
    saved = _saved_stderr()
    if saved is None:
        yield
        return
    read, write = os.pipe()
    os.dup2(write, 2)
    os.close(write)

    def pump() -> None:
        held = b""
        try:
            while chunk := os.read(read, 65536):
                *lines, held = (held + chunk).split(b"\n")
                out = b"".join(x + b"\n" for x in lines if not any(n in x for n in noise))
                if held and not held.startswith(b"["):  # not a log line: pass it now
                    out, held = out + held, b""
                if out:
                    os.write(saved, out)
            if held:
                os.write(saved, held)
        finally:
            os.close(read)
            os.close(saved)

    thread = threading.Thread(target=pump, daemon=True, name="deepinside-stderr")
    thread.start()
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        fd = os.dup(saved)
        os.dup2(fd, 2)  # the pipe's last writer here closes: the pump drains and stops
        os.close(fd)
        thread.join(timeout=2.0)


# An HTTP/2 client's connection preface and an empty SETTINGS frame (RFC 9113, 3.4): a gRPC
# server (Ray's GCS) answers with a SETTINGS frame; an HTTP/1 server or another protocol does
# not.
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
HTTP2_SETTINGS = 0x04


def _tcp_probe(host: str, port: int, timeout: float, where: str, grpc: bool = False) -> str:
    """Connect to ``host:port`` (one line on failure); with ``grpc``, also send an HTTP/2
    preface and return ``"grpc"`` if a SETTINGS frame comes back, ``"other"`` if something
    else does, ``"silent"`` if nothing does within ``timeout``; else ``""``."""
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=max(0.1, timeout)) as sock:
            if not grpc:
                return ""
            sock.sendall(HTTP2_PREFACE)
            head = b""
            while len(head) < 9:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    chunk = sock.recv(9 - len(head))
                except TimeoutError:
                    return "silent"
                if not chunk:
                    return "other"
                head += chunk
            return "grpc" if head[3] == HTTP2_SETTINGS else "other"
    except socket.gaierror:
        raise RayConnectError(f"cannot join the Ray cluster at {where}: cannot resolve the "
                              f"host {host!r}") from None
    except ConnectionRefusedError:
        raise RayConnectError(
            f"cannot join the Ray cluster at {where}: nothing listens there (connection "
            "refused); is the head started (`ray start --head --port=PORT`), and is PORT the "
            "one it was given?") from None
    except TimeoutError:
        raise RayConnectError(f"cannot join the Ray cluster at {where}: no answer within "
                              f"{timeout:.0f} s (a wrong host, or a firewall)") from None
    except OSError as e:
        raise RayConnectError(f"cannot join the Ray cluster at {where}: {e.strerror or e}"
                              ) from None


def _gcs_probe(gcs: str) -> str:
    """``""`` if the GCS at ``gcs`` lets this process in and runs its versions; else why not
    (one line). Blocks until Ray's GCS client answers or gives up. (Ray's internal client:
    where a Ray version lacks it, ``ray.init`` alone decides.)"""
    import ray

    try:
        from ray._raylet import GcsClient
    except ImportError:
        return ""

    try:
        client = GcsClient(address=gcs)
    except Exception as e:  # noqa: BLE001 - classified below
        if "auth" in f"{type(e).__name__} {e}".lower():
            return _auth_hint()
        return f"no Ray cluster answered ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
    try:
        from ray._common.usage.usage_lib import get_cluster_metadata

        meta = get_cluster_metadata(client) or {}
    except Exception:  # noqa: BLE001 - an older or newer layout: ray.init checks it again
        return ""
    theirs = (meta.get("ray_version"), meta.get("python_version"))
    ours = (ray.__version__, ".".join(map(str, sys.version_info[:3])))
    if None not in theirs and theirs != ours:
        try:
            from ray._private.utils import check_version_info

            check_version_info(meta, "this machine")
        except RuntimeError:
            return (f"version mismatch: the cluster runs Ray {theirs[0]} on Python "
                    f"{theirs[1]}, this process Ray {ours[0]} on Python {ours[1]}; the driver "
                    "needs the cluster's versions")
        except Exception:  # noqa: BLE001, S110 - Ray's own check decides
            pass
    return ""


def _gcs_address(address: str, where: str) -> str:
    """``HOST:PORT`` of a cluster address (``auto`` resolved as Ray resolves it)."""
    try:
        from ray._private import services

        resolve = services.canonicalize_bootstrap_address
    except (ImportError, AttributeError):  # Ray's internals moved: take the address as given
        return address
    try:
        gcs = resolve(address)
    except ConnectionError:
        raise RayConnectError(
            f"cannot join the Ray cluster at {where}: no running Ray found on this machine "
            "(auto means RAY_ADDRESS, else the cluster `ray start` last started here, else the "
            "one Ray running here); give HEAD:6379, or start a head with `ray start --head`"
        ) from None
    except ValueError:
        raise RayConnectError(f"cannot join the Ray cluster at {where}: not an address "
                              "(HOST:PORT, auto or ray://HOST:PORT)") from None
    if not gcs:
        raise RayConnectError(f"cannot join the Ray cluster at {where}: no address")
    return gcs


def _split(hostport: str) -> tuple[str, int]:
    host, _, port = hostport.rpartition(":")
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise RayConnectError(f"cannot join the Ray cluster at {hostport}: not HOST:PORT"
                              ) from None


def _quiet_ray_loggers() -> None:
    # "Token authentication is enabled for this Ray cluster" on every local start
    logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)


def connect_ray(address: str | None = None, timeout: float = DEFAULT_TIMEOUT, *,
            num_cpus: int | None = None, object_store_memory: int = OBJECT_STORE_BYTES) -> str:
    """Initialise Ray in this process (see the module docstring for which Ray) and return a
    one-line description of it; nothing if Ray is already initialised.

    Args:
        address: ``--ray-address`` (``HOST:PORT``, ``auto``, ``ray://HOST:PORT``) or ``None``.
        timeout: seconds to reach and join a cluster (not used for a local Ray).
        num_cpus, object_store_memory: a local Ray's (default: this machine's cores,
            :data:`OBJECT_STORE_BYTES`; never passed when joining a cluster).

    Raises:
        RayConnectError: the cluster cannot be joined (one line: the address and why).
    """
    import ray

    if ray.is_initialized():
        return describe_cluster()
    _quiet_ray_loggers()
    address, origin = resolve_address(address)
    if address is None:  # "local": a new Ray even where `ray start` left one to find
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1,
                 object_store_memory=object_store_memory, include_dashboard=False,
                 log_to_driver=False, logging_level=logging.WARNING)
        return describe_cluster()
    if address == "auto":  # as ray.init does for auto: token auth where a token is found
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )

        with contextlib.suppress(Exception):
            maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    deadline = time.monotonic() + timeout
    where = f"{address}{origin}"
    if address.startswith("ray://"):
        _tcp_probe(*_split(address.removeprefix("ray://").split("/")[0]), timeout, where)
        _init(address, where)
        return describe_cluster()
    gcs = _gcs_address(address, where)
    if address == "auto" and os.environ.get("RAY_ADDRESS", "").strip():
        where = f"{gcs} (auto: RAY_ADDRESS)"
    elif gcs != address:
        where = f"{gcs} ({address}{origin})"
    host, port = _split(gcs)
    tls = os.environ.get("RAY_USE_TLS", "").lower() in ("1", "true")
    spoken = _tcp_probe(host, port, deadline - time.monotonic(), where, grpc=not tls)
    if spoken == "other":
        raise RayConnectError(
            f"cannot join the Ray cluster at {where}: something else listens there (not a Ray "
            "head's GCS: the dashboard's port 8265, say); give the port `ray start --head "
            "--port` was given, 6379 by default")
    why: list[str] = []
    probe = threading.Thread(target=lambda: why.append(_gcs_probe(gcs)), daemon=True)
    if spoken != "silent":  # else Ray's client would retry for 40 s, past the timeout
        with quiet_stderr():  # Ray's C++ client logs every retry on fd 2
            probe.start()
            probe.join(max(0.0, deadline - time.monotonic()))
    if spoken == "silent" or not why:
        raise RayConnectError(
            f"cannot join the Ray cluster at {where}: something listens there but no Ray "
            f"answered within {timeout:.0f} s; is it the head's GCS port (the one "
            "`ray start --head --port` was given, 6379 by default)?")
    if why[0]:
        raise RayConnectError(f"cannot join the Ray cluster at {where}: {why[0]}")
    _init(gcs, where)
    return describe_cluster()


def _init(address: str, where: str) -> None:
    import ray

    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except ImportError as e:
        raise RayConnectError(f"cannot join the Ray cluster at {where}: {e} (Ray Client needs "
                              "pip install 'ray[client]')") from None
    except Exception as e:  # noqa: BLE001 - one line, whatever Ray raised
        text = f"{type(e).__name__} {e}"
        if "auth" in text.lower():
            why = _auth_hint()
        elif "version mismatch" in text.lower():
            why = "version mismatch between the cluster and this process (Ray or Python)"
        else:
            why = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise RayConnectError(f"cannot join the Ray cluster at {where}: {why}") from None


def describe_cluster() -> str:
    """One line about the Ray this process is connected to: nodes, CPUs, GPUs."""
    import ray

    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        res = ray.cluster_resources()
    except Exception:  # noqa: BLE001 - Ray Client may not expose the node table
        return "ray: connected"
    gpus = int(res.get("GPU", 0))
    cpus = res.get("CPU", 0)
    return (f"ray: {len(nodes)} node{'s' * (len(nodes) != 1)}, {cpus:g} CPU{'s' * (cpus != 1)}"
            f"{f', {gpus} GPU' + 's' * (gpus != 1) if gpus else ''}")
