"""uvicorn in N processes that each listen on the same port with ``SO_REUSEPORT``.

``uvicorn --workers N`` shares one listening socket between its workers, and a
connection stays with the worker that accepted it. wrk opens its connections all at
once, so one worker often accepts all 32 and the other idles: "two workers" then
measures one. With ``SO_REUSEPORT`` every process has a socket of its own and the
kernel spreads new connections over them by a hash of the peer's address and port, as
gunicorn's ``--reuse-port`` does in production. Linux only (the kernel's balancing).

    python reuseport_serve.py --workers 2 --port 8000 --app-dir DIR module:factory

The parent starts the workers (``--worker``) and waits; SIGTERM or SIGINT stops them.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import types

import uvicorn

WORKER_MARK = "--worker"  # bench_http finds the workers by this in their command line


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _serve(args: argparse.Namespace) -> None:
    sys.path.insert(0, args.app_dir)  # as uvicorn's own --app-dir does
    config = uvicorn.Config(
        args.app,
        factory=True,
        http="httptools",
        loop="asyncio",
        access_log=False,
        log_level="warning",
    )
    uvicorn.Server(config).run(sockets=[_listen(args.host, args.port)])


def _supervise(args: argparse.Namespace) -> int:
    command = [
        sys.executable, __file__, WORKER_MARK, "--host", args.host, "--port", str(args.port),
        "--app-dir", args.app_dir, args.app,
    ]  # fmt: skip
    children = [subprocess.Popen(command) for _ in range(args.workers)]

    def stop(signum: int, frame: types.FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # One worker gone (a crash, a port already taken) stops the others: a half-served
    # benchmark would report one worker's rate as two's.
    _, status = os.wait()
    stop(signal.SIGTERM, None)
    codes = [os.waitstatus_to_exitcode(status)] + [child.wait() for child in children]
    return max(codes, key=abs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(WORKER_MARK, action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--app-dir", default=".")
    parser.add_argument("app", help="module:factory")
    args = parser.parse_args(argv)
    if args.worker:
        _serve(args)
        return 0
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return _supervise(args)


if __name__ == "__main__":
    sys.exit(main())
