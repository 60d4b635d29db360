"""``deepinside serve``: the page and the HTTP API on this machine (FastAPI on uvicorn)."""

from __future__ import annotations

import argparse
import sys

from .common import CLIError, add_model_args, model_from_args, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``serve`` subcommand."""
    p = sub.add_parser("serve", help="a web page and an HTTP API (FastAPI on uvicorn)")
    add_model_args(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=positive_int, default=8000, help="port (default 8000)")
    p.add_argument("--token", default=None,
                   help="require 'Authorization: Bearer TOKEN' on every /v1 call")
    p.add_argument("--report", default=None, metavar="DIR",
                   help="a `deepinside paper` folder to serve at /report/")
    p.add_argument("--queue", type=positive_int, default=32,
                   help="requests that may wait for the model (503 above; default 32)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds a request may take (504 above; default 60)")
    p.add_argument("--max-body", type=positive_int, default=10 * 2**20, metavar="BYTES",
                   help="largest request body (413 above; default 10 MB)")
    p.add_argument("--max-pixels", type=positive_int, default=40_000_000,
                   help="largest photo in pixels (413 above; default 40 MP)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..serve import Limits, ModelWorker, create_app
    except ImportError:
        raise CLIError("deepinside serve needs FastAPI and uvicorn: "
                       "pip install 'deepinside[serve]'") from None
    from pathlib import Path

    if args.report is not None and not (Path(args.report) / "index.html").is_file():
        raise CLIError(f"--report {args.report}: holds no index.html")
    import threading
    import time

    clf = model_from_args(args)
    limits = Limits(max_body=args.max_body, max_pixels=args.max_pixels, queue=args.queue,
                    timeout=args.timeout)
    worker = ModelWorker(limits, thread=False)  # runs below, in this (the main) thread
    app = create_app(clf, token=args.token, report=args.report, limits=limits, worker=worker)
    url = f"http://{args.host}:{args.port}/"

    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port,
                                           log_level="warning"))
    failed: list[BaseException] = []
    stop = threading.Event()

    def http() -> None:
        try:
            server.run()
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            failed.append(e)
        finally:
            stop.set()

    thread = threading.Thread(target=http, name="deepinside-http", daemon=True)
    thread.start()
    try:
        while not server.started and not stop.is_set():  # listening: say where
            time.sleep(0.05)
        if server.started:
            print(f"deepinside: serving {clf.name} at {url} (Ctrl-C to stop)", file=sys.stderr,
                  flush=True)
        worker.serve(stop)
    except KeyboardInterrupt:
        pass
    finally:
        server.should_exit = True  # graceful: open requests finish
        thread.join(timeout=10)
        if thread.is_alive():  # a connection held open: stop without waiting for it
            server.force_exit = True
            thread.join(timeout=5)
    if failed or not server.started:
        reason = failed[0] if failed else "the server did not start (is the port in use?)"
        raise CLIError(f"cannot serve at {url}: {reason}")
    print("deepinside: stopped", file=sys.stderr)
    return 0
