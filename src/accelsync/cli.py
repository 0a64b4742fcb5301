"""The `accelsync` command: validate, run, schema, pools, devstack, demo."""

from __future__ import annotations

import argparse
import json
import sys

from accelsync.errors import SpecError


def cmd_validate(args) -> int:
    from accelsync.spec import load_spec, spec_files

    files = spec_files(args.paths)
    if not files:
        print(f"no spec files in {' '.join(args.paths)}", file=sys.stderr)
        return 1
    bad = 0
    for path in files:
        try:
            spec = load_spec(path)
            _check_suite(spec, str(path))
        except SpecError as exc:
            bad += 1
            for line in exc.lines():
                print(line)
            continue
        print(f"{path}: ok ({spec.name}: {spec.source.type} -> {spec.target.type})")
        for field, note in spec.notes():
            print(f"{path}: {field}: note: {note}")
    return 1 if bad else 0


def _check_suite(spec, path: str) -> None:
    """The suite's expectations as Great Expectations reads them (types, arguments): GX is slow
    to import, so this runs in `validate` and the gate, not when Airflow parses DAGs."""
    if not spec.quality.suite:
        return
    from accelsync.quality.expectations import load_suite
    try:
        load_suite(spec.quality.suite)
    except SpecError as exc:
        raise SpecError(path, [("quality.suite", line) for line in exc.lines()]) from None


def cmd_run(args) -> int:
    from accelsync import pipeline
    from accelsync.spec import load_spec
    from accelsync.summary import render

    try:
        spec = load_spec(args.spec)
    except SpecError as exc:
        print("\n".join(exc.lines()), file=sys.stderr)
        return 1
    summary = pipeline.run(spec, args.run_id)
    print(render(summary), file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(summary, default=str))
    return 0 if summary["status"] == "published" else 1


def cmd_schema(args) -> int:
    from accelsync.spec import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def cmd_pools(args) -> int:
    """Create the Airflow pool of each business line of the specs when it is missing."""
    from accelsync.isolation import ensure_pools, pool_name, pool_slots
    from accelsync.spec import load_spec, spec_files

    specs = []
    for path in spec_files(args.paths):
        try:
            specs.append(load_spec(path))
        except SpecError as exc:
            print("\n".join(exc.lines()), file=sys.stderr)
    created = set(ensure_pools(specs))
    for line in sorted({spec.business_line for spec in specs}):
        name = pool_name(line)
        print(f"{name}: {'created with ' + str(pool_slots(line)) + ' slots' if name in created else 'exists'}")
    return 0


def cmd_devstack(args) -> int:
    from accelsync import devstack

    return devstack.command(args.action, args.services or None)


def cmd_demo(args) -> int:
    from accelsync.demo import main as demo_main

    return demo_main(rows=args.rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="accelsync", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    validate = commands.add_parser("validate", help="check spec files or folders")
    validate.add_argument("paths", nargs="+")
    validate.set_defaults(func=cmd_validate)

    run = commands.add_parser("run", help="run one sync without Airflow: plan, sync, gate, publish")
    run.add_argument("spec")
    run.add_argument("--json", action="store_true", help="print the summary as one JSON line last on stdout")
    run.add_argument("--run-id", default=None, help="reuse a run id (rerun converges on the same run folder)")
    run.set_defaults(func=cmd_run)

    schema = commands.add_parser("schema", help="print the JSON Schema of the spec")
    schema.set_defaults(func=cmd_schema)

    pools = commands.add_parser("pools", help="create the missing Airflow pools of the specs' business lines")
    pools.add_argument("paths", nargs="+")
    pools.set_defaults(func=cmd_pools)

    devstack = commands.add_parser("devstack", help="local services for the demo and the tests")
    devstack.add_argument("action", choices=["up", "down", "status", "env"])
    devstack.add_argument("services", nargs="*", help="limit to these services (default: all)")
    devstack.set_defaults(func=cmd_devstack)

    demo = commands.add_parser("demo", help="devstack up, demo data, every demo DAG through Airflow")
    demo.add_argument("--rows", type=int, default=10_000, help="rows of demo data per table")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
