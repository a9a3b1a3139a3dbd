"""The ``ftgo`` command: ``ftgo demo`` (the embedded tour), ``ftgo serve``, ``ftgo up``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from servicewire.cli import refuse_unsafe_text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ftgo", description="FTGO, Servicewire's reference app.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="run the order flow embedded and explain it")
    demo.add_argument(
        "--dir",
        type=Path,
        default=Path("build/ftgo-demo"),
        help="where the SQLite files and the diagram go (recreated)",
    )
    demo.add_argument("--svg", type=Path, default=None, help="sequence diagram path")
    demo.add_argument("--serve", action="store_true", help="keep running after the tour")
    demo.add_argument(
        "--port-base",
        type=int,
        default=8080,
        help="REST on base+1..3, gRPC on base+1001; 0 = free ports",
    )
    from ftgo.app import serve, up

    serve.add_arguments(sub.add_parser("serve", help="run one service as its own process"))
    up.add_arguments(sub.add_parser("up", help="run all three services and relays as processes"))
    return parser


# What `ftgo serve` and `ftgo up` need beyond the core: REST, gRPC and a broker or two.
_SERVE_EXTRAS = "servicewire[rest,grpc,postgres,amqp]"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _run(argv)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in {"servicewire", "ftgo"}:
            raise
        print(
            f"ftgo: this command needs {exc.name}, which an optional extra provides; "
            f"install it with: pip install '{_SERVE_EXTRAS}' (or the extras your URLs name)",
            file=sys.stderr,
        )
        return 2


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    refuse_unsafe_text(parser, args)  # ids and URLs reach databases
    if args.command == "demo":
        from ftgo.app.demo import run_demo

        try:
            return asyncio.run(
                run_demo(args.dir, serve=args.serve, svg=args.svg, port_base=args.port_base)
            )
        except KeyboardInterrupt:
            return 0
    if args.command == "serve":
        from ftgo.app.serve import main as serve_main

        return serve_main(args)
    if args.command == "up":
        from ftgo.app.up import main as up_main

        return up_main(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
