"""``servicewire api lock`` / ``servicewire api check``: the API lock file.

    servicewire api check            # fails when an API changed without the right bump
    servicewire api lock             # records the current APIs in api.lock.json
    servicewire api lock --force     # also accept removed APIs and wrong bumps

What is published is configured under ``[tool.servicewire.api]`` in ``pyproject.toml``
(see :mod:`servicewire.evolution.config`). Exit codes follow ``servicewire compat``:
0 fine, 1 a check failed (a bump too small, a stale lock), 2 the configuration or a
document cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNREADABLE = 2


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("api", help="the API lock file (api.lock.json)")
    sub = parser.add_subparsers(dest="api_command", metavar="ACTION", required=True)
    for name, text in [
        ("check", "fail when an API changed without the bump it needs, or the lock is stale"),
        ("lock", "write api.lock.json with every published API, its version and hash"),
    ]:
        action = sub.add_parser(name, help=text, description=text)
        action.add_argument(
            "--project",
            type=Path,
            default=None,
            help="project root (default: nearest pyproject.toml)",
        )
        if name == "lock":
            action.add_argument(
                "--force",
                action="store_true",
                help="write even when a bump is wrong or an API was removed",
            )


def run(args: argparse.Namespace) -> int:
    from servicewire.evolution.config import find_root, load_config
    from servicewire.evolution.lock import check, collect, read_lock, write_lock
    from servicewire.evolution.model import DocumentError

    try:
        config = load_config(args.project or find_root(Path.cwd()))
        current = collect(config)
        locked = read_lock(config.lock)
        findings = check(current, locked, config.policy)
    except DocumentError as exc:
        print(f"servicewire api: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    bad = [f for f in findings if not f.ok]
    for finding in findings:
        mark = "ok   " if finding.ok else "FAIL "
        print(f"{mark} {finding.api}: {finding.message}")
        for change in finding.changes:
            print(
                f"        {change.bump.label:<5} {change.code} at {change.location}: "
                f"{change.message}"
            )
    lock_name = (
        config.lock.relative_to(config.root)
        if config.lock.is_relative_to(config.root)
        else config.lock
    )
    if args.api_command == "check":
        stale = [f for f in findings if f.ok and f.stale]
        if bad:
            print(
                f"{len(bad)} API(s) need attention; fix the versions, "
                "then run 'servicewire api lock'"
            )
            return EXIT_FAILED
        if stale:
            print(f"{lock_name} is out of date for {len(stale)} API(s); run 'servicewire api lock'")
            return EXIT_FAILED
        print(f"{len(current)} API(s) match {lock_name}")
        return EXIT_OK
    if bad and not args.force:
        print(f"not writing {lock_name}: {len(bad)} problem(s) above (use --force to accept them)")
        return EXIT_FAILED
    write_lock(config.lock, current)
    print(f"wrote {lock_name} with {len(current)} API(s)")
    return EXIT_OK
