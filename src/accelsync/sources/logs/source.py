"""Log files source: a glob or folder of plain or gzip files, parsed line by line into Arrow.

Plan (driver): the path is expanded through fsspec (a local path, `file://`, `s3://`, ... with its
fsspec driver installed); a folder is searched recursively, skipping hidden files. Every file is
fingerprinted (sha256 of its first and last 64 KiB and its size) and recognised as gzip by its
magic bytes. Files are packed into `speed.channels` partitions of about equal work (a gzip file
weighs its uncompressed size, from the gzip trailer); a plain file larger than its share and
than `SPLIT_MIN_BYTES` is split into byte ranges that each own the lines *starting* inside them.
Each file is read up to the size it had at plan time: what is appended later belongs to the next
run.

Read (Spark task): files are streamed in blocks of whole lines, never whole. A block becomes one
Arrow batch with a handful of Arrow kernels: lines are split and UTF-8 checked in C++, JSON
blocks go through `pyarrow.json`, regex blocks through `extract_regex` (RE2), CSV blocks through
`pyarrow.csv`. Only a part of a block that fails is parsed again line by line, so each bad line
becomes one dirty record `{file, line}` with its reason. Empty and blank lines are skipped
(neither read nor dirty). Every row carries `_file` and `_line` (1-based, counting every line).

Values (`schema`) are parsed by `accelsync.sources.records`, the parser Kafka uses too; with
`header: true` the first line of each CSV file names the columns and `schema` picks them by name.

Incremental (`incremental: true`): a ledger (state key `files`: path -> size, mtime,
fingerprint), advanced only at publish, says what was synced. A listed file whose size and
mtime match its entry is skipped; one whose size or mtime differ is fingerprinted: same size and
fingerprint means only touched (skipped; its mtime is refreshed at publish). A plain file that
only *grew* (its synced bytes unchanged: the same fingerprint over them, ending at a line end)
is read from where the last sync ended, with its line numbers continued, so no line is read
twice, and append-only targets (Druid) get each line once. Anything else means it *changed
since it was synced*: it is re-read in full and reported in the plan description, in
`Plan.state["changed"]` and as a logged warning; keyed targets (Redis keys, HBase rows)
converge, append-only targets get its old lines again. Point incremental syncs at closed files
(rotated `*.gz`) or files only appended to. Empty files are not recorded (they are read when
they get lines). Ledger entries of files no longer listed are dropped at publish, unless
nothing at all was listed.
"""

from __future__ import annotations

import logging
import re
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from accelsync.engine.dirty import DirtyLog
from accelsync.engine.plan import Plan
from accelsync.errors import TerminalError
from accelsync.sources.base import Source
from accelsync.sources.fields import arrow_type
from accelsync.sources.logs.blocks import read_blocks
from accelsync.sources.logs.files import (change_of, ledger_entry, size_text, appended_to, balance, describe_files,
                                          list_files,  split_files)
from accelsync.sources.logs.spec import LogsSourceSpec
from accelsync.sources.records import ByteRanges, RecordParser, _re2_compatible
from accelsync.state import load_state, save_state


log = logging.getLogger(__name__)

LEDGER = "files"                 # state key of the processed-file ledger


class LogsSource(Source):
    """Log files (plain or gzip) as Arrow batches, one partition per group of files."""

    type = "logs"
    options: LogsSourceSpec

    # ------------------------------------------------------------ plan (driver)

    def fields(self) -> dict[str, str]:
        """Parsed fields in output order, with their spec types."""
        declared = dict(self.options.schema_ or {})
        if self.options.format == "regex":
            groups = re.compile(self.options.pattern).groupindex
            names = [name for name, _ in sorted(groups.items(), key=lambda item: item[1])]
            return {name: declared.get(name, "string") for name in names}
        return declared

    def schema(self) -> pa.Schema:
        fields = self.fields()
        clash = [name for name in fields if name in LogsSourceSpec.META_COLUMNS]
        if clash:
            raise TerminalError(f"source.schema: {clash} are names of meta columns every log row carries "
                                f"({', '.join(LogsSourceSpec.META_COLUMNS)}); rename the field")
        return pa.schema([pa.field(name, arrow_type(kind)) for name, kind in fields.items()] +
                         [pa.field("_file", pa.string()), pa.field("_line", pa.int64())])

    def plan(self, channels: int) -> Plan:
        schema = self.schema()
        listed = list_files(self.options.path)
        ledger = load_state(self.spec.name).get(LEDGER, {}) if self.options.incremental else {}
        candidates, skipped = [], 0
        for uri, (size, mtime) in sorted(listed.items()):
            entry = ledger.get(uri)
            if entry and entry.get("size") == size and entry.get("mtime") == mtime:
                skipped += 1
            else:
                candidates.append((uri, size, mtime))
        header = self.options.delimiter if self._named_header() else None
        described = describe_files(candidates, header)
        files, changed, touched, grown = [], [], {}, []
        for info in described:
            entry = ledger.get(info["path"])
            if entry and entry.get("size") == info["size"] and entry.get("fingerprint") == info["fingerprint"]:
                touched[info["path"]] = ledger_entry(info)
                skipped += 1
                continue
            if entry and appended_to(entry, info):
                # only the lines written since the last sync
                info = dict(info, start=entry["size"], weight=max(1, info["size"] - entry["size"]))
                grown.append({"path": info["path"], "from": entry["size"], "to": info["size"]})
            elif entry:
                changed.append({"path": info["path"], "change": change_of(entry, info),
                                "was": {k: entry.get(k) for k in ("size", "mtime", "fingerprint")},
                                "now": ledger_entry(info)})
            files.append(info)
        if self._named_header():
            for info in files:
                self._check_header(info)
        pieces = split_files(files, channels)
        partitions = [{"pieces": group} for group in balance(pieces, channels)]
        gone = sorted(set(ledger) - set(listed)) if listed else []
        state = {"incremental": self.options.incremental,
                 "files": {info["path"]: ledger_entry(info) for info in files},
                 "changed": changed, "grown": grown, "touched": touched, "gone": gone, "skipped": skipped}
        for item in changed:
            log.warning("logs source %s: %s changed since it was synced (%s); re-reading it in full",
                        self.spec.name, item["path"], item["change"])
        return Plan(schema, partitions, state,
                    self._describe(listed, files, pieces, partitions, changed, grown, skipped))

    def _named_header(self) -> bool:
        """A CSV header that names the fields (with `positions` the header line is only skipped)."""
        return self.options.format == "csv" and self.options.header and self.options.positions is None

    def _check_header(self, info: dict) -> None:
        missing = [name for name in self.fields() if name not in (info.get("header") or [])]
        if missing:
            raise TerminalError(f"source.schema: {info['path']}: the CSV header "
                                f"({', '.join(info.get('header') or []) or 'empty'}) has no column {missing}")

    def _describe(self, listed, files, pieces, partitions, changed, grown, skipped) -> str:
        if not listed:
            return f"no files match {self.options.path}"
        size = sum(info["size"] for info in files)
        zipped = sum(1 for info in files if info["gzip"])
        text = (f"{len(files)} files ({zipped} gzip, {size_text(size)}) in {len(partitions)} partitions"
                + (f", {len(pieces)} pieces" if len(pieces) != len(files) else ""))
        if self.options.incremental:
            text += (f"; incremental: {len(files) - len(changed) - len(grown)} new, "
                     + (f"{len(grown)} grown (read from where the last sync ended), " if grown else "")
                     + f"{skipped} already synced")
        if self.options.format == "regex" and not _re2_compatible(self.options.pattern):
            text += "; the pattern needs Python's re (not RE2): parsed line by line, slower"
        if changed:
            shown = ", ".join(f"{item['path']} ({item['change']})" for item in changed[:5])
            more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
            text += (f"; WARNING: {len(changed)} files changed since they were synced and are re-read in "
                     f"full: {shown}{more}")
        return text

    # ------------------------------------------------------------ publish (driver)

    def publish(self, plan: Plan) -> dict:
        """Add the files this run read to the ledger (only here: a failed run adds nothing)."""
        if not plan.state.get("incremental"):
            return {}
        ledger = load_state(self.spec.name).get(LEDGER, {})
        for path in plan.state.get("gone", []):
            ledger.pop(path, None)
        ledger.update(plan.state.get("touched", {}))
        added = {path: entry for path, entry in plan.state.get("files", {}).items() if entry["size"] > 0}
        ledger.update(added)
        save_state(self.spec.name, {LEDGER: ledger})
        return {"files": len(added), "changed": len(plan.state.get("changed", [])), "ledger": len(ledger)}

    # ------------------------------------------------------------ read (Spark task)

    def read(self, plan: Plan, partition: dict, dirty: DirtyLog) -> Iterator[pa.RecordBatch]:
        parser = _Parser(self.options, self.fields(), plan.schema)
        for piece in partition.get("pieces", []):
            parser.start_file(piece)
            for first_line, block in read_blocks(piece, dirty):
                batch = parser.parse(block, first_line, piece["path"], dirty)
                if batch is not None and batch.num_rows:
                    yield batch


# ---------------------------------------------------------------- parsing blocks

class _Parser:
    """Turns blocks of whole lines into batches of the plan schema; bad lines go to `dirty`.

    The lines themselves are parsed by the `RecordParser` every text source shares."""

    def __init__(self, options: LogsSourceSpec, fields: dict[str, str], schema: pa.Schema):
        self.options = options
        self.schema = schema
        self.records = RecordParser(options.format, fields, pattern=options.pattern, delimiter=options.delimiter,
                                    positions=options.positions, null_value=options.null_value)
        self.skip_header = False

    def start_file(self, piece: dict) -> None:
        csv_header = self.options.format == "csv" and self.options.header
        header = piece.get("header") if csv_header and self.options.positions is None else None
        self.records.new_stream(header)
        self.skip_header = csv_header and piece["start"] == 0

    def parse(self, block: bytes, first_line: int, path: str, dirty: DirtyLog) -> pa.RecordBatch | None:
        """One batch of the parsed lines of `block` (whose first line is number `first_line`)."""
        if self.skip_header:
            self.skip_header = False
            cut = block.find(b"\n") + 1
            block, first_line = block[cut:], first_line + 1
            if not block:
                return None
        lines = pc.list_flatten(pc.split_pattern(pa.array([block], pa.binary()), "\n"))
        lines = lines.slice(0, len(lines) - 1)  # the block ends with a newline
        clean = True
        try:
            text = lines.cast(pa.string())
        except pa.ArrowInvalid:
            text, clean = _drop_bad_utf8(lines, first_line, path, dirty), False
        if b"\r" in block:
            text = pc.utf8_rtrim(text, "\r")
        empty = pc.equal(pc.binary_length(text), 0)
        blank = pc.or_(empty, pc.utf8_is_space(text))
        if clean and pc.any(pc.and_(blank, pc.invert(empty))).as_py():
            clean = False  # whitespace-only lines: parse the kept lines, not the raw block
        keep = pc.invert(blank)
        rows = pc.indices_nonzero(keep)
        if len(rows) == 0:
            return None
        good = text.filter(keep)
        view = ByteRanges.of_lines(block, lines, rows.to_numpy()) if clean else None
        columns, failures = self.records.parse(good, view)
        numbers = pc.add(rows.cast(pa.int64()), first_line)
        if failures:
            for index in sorted(failures):
                dirty.add({"file": path, "line": numbers[index].as_py()}, failures[index], good[index].as_py())
            ok = np.ones(len(good), dtype=bool)
            ok[list(failures)] = False
            mask = pa.array(ok)
            columns = [column.filter(mask) for column in columns]
            numbers = numbers.filter(mask)
        columns += [pa.repeat(pa.scalar(path, pa.string()), len(numbers)), numbers]
        return pa.RecordBatch.from_arrays(columns, schema=self.schema)


def _drop_bad_utf8(lines: pa.Array, first_line: int, path: str, dirty: DirtyLog) -> pa.Array:
    """Lines as text, with each line that is not UTF-8 made dirty and emptied (hence skipped)."""
    valid = []
    for index, value in enumerate(lines.to_pylist()):
        try:
            value.decode("utf-8")
            valid.append(True)
        except UnicodeDecodeError as exc:
            valid.append(False)
            dirty.add({"file": path, "line": first_line + index},
                      f"bad encoding: not valid UTF-8 ({exc.reason} at byte {exc.start})", value)
    return pc.if_else(pa.array(valid), lines, pa.scalar(b"", pa.binary())).cast(pa.string())
