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
    p.add_argument("--max-render-pixels", type=positive_int, default=4_000_000,
                   help="a larger photo's map, overlay and mask are drawn scaled down to this "
                        "many pixels (default 4 MP; its box stays in the photo's pixels)")
    p.add_argument("--max-instances", type=positive_int, default=16,
                   help="instances of one KServe explain request (413 above; default 16)")
    p.add_argument("--allowed-hosts", default=None, metavar="H1,H2",
                   help="names the Host header may give (400 otherwise; default: the bound "
                        "address, localhost, 127.0.0.1, [::1]; '*': any)")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="another site (https://example.org) allowed to call the API from a "
                        "browser; repeat for several ('*': any). Default: none")
    p.add_argument("--jobs", type=positive_int, default=8,
                   help="class-model jobs queued or running (503 above; default 8)")
    p.add_argument("--jobs-per-client", type=positive_int, default=2,
                   help="of those, from one client address (429 above; default 2)")
    p.add_argument("--job-timeout", type=float, default=600.0,
                   help="seconds a class-model job may run (default 600)")
    p.add_argument("--job-ttl", type=float, default=600.0,
                   help="seconds a finished job's result is kept (default 600)")
    p.add_argument("--no-fast", action="store_true",
                   help="run the model itself, not its batch-norm-folded copy (engine switch)")
    p.add_argument("--amp", choices=["float16", "bfloat16"], default=None,
                   help="autocast the methods that support it (engine switch; default off)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model for the methods that support it (engine "
                        "switch; compiled once, before the first request)")
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
    for name in ("timeout", "job_timeout", "job_ttl"):
        if not getattr(args, name) > 0:
            raise CLIError(f"--{name.replace('_', '-')} must be a positive number of seconds")
    limits = Limits(max_body=args.max_body, max_pixels=args.max_pixels,
                    max_render_pixels=args.max_render_pixels, queue=args.queue,
                    timeout=args.timeout, max_instances=args.max_instances, jobs=args.jobs,
                    jobs_per_client=args.jobs_per_client, job_timeout=args.job_timeout,
                    job_ttl=args.job_ttl)
    hosts = ([h.strip() for h in args.allowed_hosts.split(",") if h.strip()]
             if args.allowed_hosts else [args.host, "localhost", "127.0.0.1", "[::1]"])
    engine: dict = {"fast": not args.no_fast}
    if args.compile:
        engine["compiled"] = True
    if args.amp is not None:
        import torch

        engine["amp"] = getattr(torch, args.amp)
    worker = ModelWorker(limits, thread=False)  # runs below, in this (the main) thread
    app = create_app(clf, token=args.token, report=args.report, limits=limits, worker=worker,
                     allowed_hosts=hosts, cors_origins=args.cors_origin, engine=engine)
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
