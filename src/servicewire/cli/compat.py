"""``servicewire compat OLD NEW``: which semantic-version bump a change to an API needs.

    servicewire compat v1/openapi.yaml v2/openapi.yaml
    servicewire compat old.proto new.proto --old-version 1.2.0 --new-version 1.3.0
    servicewire compat old.avsc new.avsc --format json --policy tolerant-clients

Prints the required bump and every finding with its location. Exit codes:
0 the declared version change covers the required bump, or no versions are declared
(then the required bump is reported, not checked), 1 the declared bump is too small
(or goes back), 2 an input cannot be read or the command line is wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_INSUFFICIENT = 1
EXIT_UNREADABLE = 2


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "compat",
        help="classify the change between two versions of an API document",
        description="Print the semantic-version bump a change to an API document needs, "
        "with every finding. Exit 0 when NEW's version covers it (or no versions are "
        "declared), 1 when the bump is too small, 2 when an input cannot be read.",
    )
    parser.add_argument("old", type=Path, help="the previous version of the document")
    parser.add_argument("new", type=Path, help="the new version of the document")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.add_argument("--kind", choices=["openapi", "proto", "avro", "jsonschema", "asyncapi"])
    parser.add_argument("--old-version", help="OLD's version when the document has none")
    parser.add_argument("--new-version", help="NEW's version when the document has none")
    parser.add_argument(
        "--policy",
        action="append",
        default=[],
        metavar="SPEC",
        help="a preset (strict, tolerant-clients, strict-channels), CODE=LEVEL, or a "
        "JSON/TOML file of CODE = LEVEL pairs; repeatable",
    )
    parser.add_argument(
        "-I",
        "--proto-path",
        action="append",
        default=[],
        type=Path,
        help="import root for .proto files; repeatable",
    )


def run(args: argparse.Namespace) -> int:
    from servicewire.evolution import DocumentError, Policy, compare, judge, load_document
    from servicewire.messaging.versioning import SemVer

    try:
        policy = Policy.from_specs(args.policy)
        old_version = SemVer.parse(args.old_version) if args.old_version else None
        new_version = SemVer.parse(args.new_version) if args.new_version else None
    except ValueError as exc:
        print(f"servicewire compat: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    try:
        old = load_document(args.old, args.kind, args.proto_path)
        new = load_document(args.new, args.kind or old.kind, args.proto_path)
        report = compare(old, new, policy)
    except DocumentError as exc:
        print(f"servicewire compat: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    verdict = judge(report.bump, old_version or old.version, new_version or new.version)
    if args.format == "json":
        out = report.to_dict()
        out["old_version"] = str(old_version or old.version or "") or None
        out["new_version"] = str(new_version or new.version or "") or None
        out["declared"] = verdict.declared.label if verdict.declared is not None else None
        out["ok"] = verdict.ok if verdict.declared is not None or not verdict.ok else None
        out["verdict"] = verdict.message
        print(json.dumps(out, indent=2))
    else:
        print(f"{report.bump.label}  ({report.kind}, {len(report.changes)} change(s))")
        for change in report.changes:
            print(f"  {change.bump.label:<5}  {change.code:<40} {change.location}")
            print(f"         {change.message}")
            if change.used_at:
                print(f"         used at {', '.join(change.used_at)}")
        if verdict.declared is None and verdict.ok:
            print(verdict.message)  # nothing was checked: neither "ok" nor "FAIL"
        else:
            print(("ok: " if verdict.ok else "FAIL: ") + verdict.message)
    return EXIT_OK if verdict.ok else EXIT_INSUFFICIENT
