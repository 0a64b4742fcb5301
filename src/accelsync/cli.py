"""The `accelsync` command: validate, run, import-datax, new, schema, pools, devstack, demo."""

from __future__ import annotations

import argparse
import json
import sys

from accelsync import registry
from accelsync.errors import SpecError


def cmd_validate(args) -> int:
    from accelsync.spec import spec_files

    files = spec_files(args.paths)
    if not files:
        print(f"no spec files in {' '.join(args.paths)}", file=sys.stderr)
        return 1
    bad = 0
    for path in files:
        try:
            spec = _load(path)
            _check_suite(spec, str(path))
        except SpecError as exc:
            bad += 1
            for line in exc.lines():
                print(line)
            continue
        print(f"{path}: ok ({spec.name}: {spec.source.type} -> {spec.target.type})")
        for field, note in spec.notes():
            print(f"{path}: {field}: note: {note}")
        if spec.quality.suite and spec.quality.suite_engine == "auto":
            from accelsync.quality import arrow_suite
            why = arrow_suite.needs_gx(arrow_suite.load_raw_suite(spec.quality.suite))
            if why:
                print(f"{path}: quality.suite: note: Great Expectations computes this suite in the gate, since {why}"
                      " (importing GX adds 3 to 5 s to the gate)")
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


def _load(path):
    """A spec file, or a DataX job file (`.json`) converted in memory with its inline connections."""
    from accelsync.datax import is_job_file, load_spec_from_job
    from accelsync.spec import load_spec

    return load_spec_from_job(path) if is_job_file(path) else load_spec(path)


def cmd_run(args) -> int:
    from accelsync import pipeline
    from accelsync.report.summary import render

    try:
        spec = _load(args.spec)
    except SpecError as exc:
        print("\n".join(exc.lines()), file=sys.stderr)
        return 1
    summary = pipeline.run(spec, args.run_id)
    print(render(summary), file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(summary, default=str))
    return 0 if summary["status"] == "published" else 1


def cmd_import_datax(args) -> int:
    """Convert a DataX job file into a spec (stdout or -o), saying what was not carried over."""
    from pathlib import Path

    from accelsync.datax import convert_file, render

    try:
        conversion = convert_file(args.job, args.name)
    except SpecError as exc:
        print("\n".join(exc.lines()), file=sys.stderr)
        return 1
    text = render(conversion)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output} ({conversion.spec['name']}: {conversion.reader} -> {conversion.writer})",
              file=sys.stderr)
    else:
        sys.stdout.write(text)
    if conversion.connections:
        print("Define the job's connections (the password is not copied; put yours in place of PASSWORD):",
              file=sys.stderr)
        for item in conversion.connections:
            print(f"  {item.export_line()}", file=sys.stderr)
    if conversion.unmapped:
        print(f"Not carried over ({len(conversion.unmapped)}):", file=sys.stderr)
        for item in conversion.unmapped:
            print(f"  {item.line()}", file=sys.stderr)
    return 0


def cmd_new(args) -> int:
    from accelsync.spec.scaffold import write_starter

    try:
        written = write_starter(args.name, args.source, args.target, args.dir)
    except (ValueError, FileExistsError) as exc:
        print(f"accelsync new: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    print(f"next: accelsync validate {written[0]}")
    return 0


def cmd_schema(args) -> int:
    from accelsync.spec import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def cmd_pools(args) -> int:
    """Create the Airflow pool of each business line of the specs when it is missing."""
    from accelsync.airflow.isolation import ensure_pools, pool_name, pool_slots
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
    from accelsync.dev import devstack

    return devstack.command(args.action, args.services or None)


def cmd_demo(args) -> int:
    from accelsync.dev.demo import main as demo_main

    return demo_main(rows=args.rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="accelsync", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    validate = commands.add_parser("validate", help="check spec files or folders (or DataX job files, .json)")
    validate.add_argument("paths", nargs="+")
    validate.set_defaults(func=cmd_validate)

    run = commands.add_parser("run", help="run one sync without Airflow: plan, sync, gate, publish")
    run.add_argument("spec", help="a spec file, or a DataX job file (.json) run as it is")
    run.add_argument("--json", action="store_true", help="print the summary as one JSON line last on stdout")
    run.add_argument("--run-id", default=None, help="reuse a run id (rerun converges on the same run folder)")
    run.set_defaults(func=cmd_run)

    imp = commands.add_parser("import-datax", help="convert a DataX (or Addax) job file into a sync spec")
    imp.add_argument("job", help="the DataX job file (JSON)")
    imp.add_argument("-o", "--output", help="write the spec here (default: stdout)")
    imp.add_argument("--name", help="the spec's name (default: from the job file's name)")
    imp.set_defaults(func=cmd_import_datax)

    new = commands.add_parser("new", help="write a commented starter spec and suite")
    new.add_argument("name", help="the sync's name: lower-case letters, digits and _")
    new.add_argument("--source", required=True, choices=list(registry.SOURCES))
    new.add_argument("--target", required=True, choices=list(registry.TARGETS))
    new.add_argument("--dir", default=".", help="project folder: writes dags/syncs/NAME.yaml and "
                                                "expectations/NAME.json under it (default: .)")
    new.set_defaults(func=cmd_new)

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
