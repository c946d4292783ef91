"""rebench-view: browse run directories and studies in a local web app (read-only).

    rebench-view RUN_DIR_OR_STUDY... [--host 127.0.0.1] [--port 7580]

The page's address is printed on stdout; Ctrl-C stops the server. Needs the `[view]` extra.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

from .common import fail

from ..viewer import DEFAULT_PORT


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rebench-view", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="RUN_DIR_OR_STUDY", help="run directories, or folders holding them")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    return p


def _bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        fail(f"--host {host!r}: not an address of this machine ({exc.strerror})")
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        hint = "; pass --port with another port, or --port 0 for any free one" if port else ""
        fail(f"cannot serve on {host}:{port}: {exc.strerror}{hint}")
    sock.listen(128)
    return sock


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        fail(f"--port {args.port}: expected 0 to 65535")
    roots = []
    for raw in args.inputs:
        path = Path(raw)
        if not path.is_dir():
            fail(f"{raw}: not a directory (give run directories, or folders holding them)")
        roots.append(path.absolute())
    try:
        import uvicorn

        from ..viewer.app import create_app
    except ImportError as exc:
        fail(f"rebench-view needs the [view] extra ({exc.name} is missing): pip install 'rebench-harness[view]'")
    sock = _bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    local = {"127.0.0.1", "::1", "localhost"}
    allowed = ["*"] if args.host not in local else [args.host, "localhost", "127.0.0.1", "[::1]"]
    app = create_app(roots, allowed_hosts=allowed)
    print(f"http://{shown}:{port}/", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


if __name__ == "__main__":
    main()
