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

import csv
import gzip
import hashlib
import heapq
import logging
import math
import re
import zlib
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Iterator

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from accelsync.dirty import DirtyLog
from accelsync.errors import TerminalError, TransientError
from accelsync.plan import Plan
from accelsync.registry import register_source
from accelsync.sources.base import Source
from accelsync.sources.fields import arrow_type
from accelsync.sources.records import ByteRanges, RecordParser, _re2_compatible
from accelsync.spec import LOGS_META_COLUMNS, LogsSource
from accelsync.state import load_state, save_state

log = logging.getLogger(__name__)

HEAD_BYTES = 64 * 1024           # fingerprint: this much of the head and of the tail
BLOCK_BYTES = 4 * 1024 * 1024    # bytes of whole lines parsed at once (one Arrow batch)
SPLIT_MIN_BYTES = 128 * 1024 * 1024   # a plain file is split only into ranges at least this big
LEDGER = "files"                 # state key of the processed-file ledger
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"


@register_source
class LogsSourceReader(Source):
    """Log files (plain or gzip) as Arrow batches, one partition per group of files."""

    type = "logs"
    options: LogsSource

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
        clash = [name for name in fields if name in LOGS_META_COLUMNS]
        if clash:
            raise TerminalError(f"source.schema: {clash} are names of meta columns every log row carries "
                                f"({', '.join(LOGS_META_COLUMNS)}); rename the field")
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
                touched[info["path"]] = _ledger_entry(info)
                skipped += 1
                continue
            if entry and appended_to(entry, info):
                # only the lines written since the last sync
                info = dict(info, start=entry["size"], weight=max(1, info["size"] - entry["size"]))
                grown.append({"path": info["path"], "from": entry["size"], "to": info["size"]})
            elif entry:
                changed.append({"path": info["path"], "change": _change(entry, info),
                                "was": {k: entry.get(k) for k in ("size", "mtime", "fingerprint")},
                                "now": _ledger_entry(info)})
            files.append(info)
        if self._named_header():
            for info in files:
                self._check_header(info)
        pieces = split_files(files, channels)
        partitions = [{"pieces": group} for group in balance(pieces, channels)]
        gone = sorted(set(ledger) - set(listed)) if listed else []
        state = {"incremental": self.options.incremental,
                 "files": {info["path"]: _ledger_entry(info) for info in files},
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
        text = (f"{len(files)} files ({zipped} gzip, {_size(size)}) in {len(partitions)} partitions"
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


# ---------------------------------------------------------------- listing and fingerprints

def _fs(uri: str):
    try:
        return fsspec.core.url_to_fs(uri)
    except ImportError as exc:  # e.g. s3:// without s3fs
        raise TerminalError(f"source.path: {uri}: {exc}") from None
    except ValueError as exc:
        raise TerminalError(f"source.path: {uri}: {exc}") from None


def _uri(fs, path: str) -> str:
    """Local files by their absolute path, others by their full URI."""
    local = "file" in (fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,))
    return path if local else fs.unstrip_protocol(path)


def _mtime(info: dict) -> Any:
    for key in ("mtime", "LastModified", "last_modified", "updated", "modified", "created"):
        value = info.get(key)
        if value is not None:
            return value.isoformat() if isinstance(value, datetime) else value
    return None


def list_files(path: str) -> dict[str, tuple[int, Any]]:
    """uri -> (size, mtime) of every file a glob or folder names (folders, also those a glob
    matches, recursively and without hidden files)."""
    fs, root = _fs(path)

    def folder(base: str) -> dict:
        base = base.rstrip("/")
        return {name: info for name, info in fs.find(base, detail=True).items()
                if not any(part.startswith(".") for part in name[len(base):].split("/"))}

    try:
        if any(char in root for char in "*?["):
            found = {}
            for name, info in fs.glob(root, detail=True).items():
                found.update(folder(name) if info.get("type") == "directory" else {name: info})
        elif fs.isdir(root):
            found = folder(root)
        elif fs.exists(root):
            found = {root: fs.info(root)}
        else:
            found = {}
    except PermissionError as exc:
        raise TerminalError(f"source.path: {path}: {exc}") from None
    except OSError as exc:
        raise TransientError(f"source.path: listing {path} failed: {exc}") from None
    return {_uri(fs, name): (int(info.get("size") or 0), _mtime(info))
            for name, info in found.items() if info.get("type", "file") == "file"}


def describe_files(candidates: list[tuple[str, int, Any]], header: str | None) -> list[dict]:
    """Fingerprint, gzip flag, work weight (and the CSV header, split on the delimiter `header`)
    of each file; in parallel, for remote stores."""
    if len(candidates) <= 4:
        return [_describe_file(*item, header=header) for item in candidates]
    with ThreadPoolExecutor(max_workers=min(16, len(candidates))) as pool:
        return list(pool.map(lambda item: _describe_file(*item, header=header), candidates))


def _fingerprint(handle, size: int) -> tuple[str, bytes, bytes]:
    """sha256 of the first and last HEAD_BYTES of the file's first `size` bytes, and of `size`;
    with the head and tail it read."""
    handle.seek(0)
    head = handle.read(min(size, HEAD_BYTES))
    tail = b""
    if size > HEAD_BYTES:
        handle.seek(max(HEAD_BYTES, size - HEAD_BYTES))
        tail = handle.read(size - max(HEAD_BYTES, size - HEAD_BYTES))
    digest = hashlib.sha256(head)
    digest.update(tail)
    digest.update(str(size).encode())
    return "sha256:" + digest.hexdigest(), head, tail


def _describe_file(uri: str, size: int, mtime: Any, header: str | None) -> dict:
    fs, path = _fs(uri)
    try:
        with fs.open(path, "rb") as handle:
            fingerprint, head, tail = _fingerprint(handle, size)
    except FileNotFoundError:
        raise TransientError(f"source.path: {uri} disappeared while planning; rerun") from None
    zipped = head[:2] == _GZIP_MAGIC
    weight = size
    if zipped:
        trailer = (head + tail)[-4:]
        isize = int.from_bytes(trailer, "little") if len(trailer) == 4 else 0
        weight = isize if isize >= size else size * 4  # multi-member or past 4 GiB: a guess
    info = {"path": uri, "size": size, "mtime": mtime, "fingerprint": fingerprint,
            "gzip": zipped, "weight": max(weight, 1)}
    if header is not None:
        info["header"] = _read_header(uri, size, zipped, header)
    return info


def _read_header(uri: str, size: int, zipped: bool, delimiter: str) -> list[str]:
    fs, path = _fs(uri)
    with fs.open(path, "rb") as handle:
        stream = gzip.GzipFile(fileobj=_Bounded(handle, size), mode="rb") if zipped else _Bounded(handle, size)
        line = _readline(stream, 1 << 20)
    if line.startswith(_BOM):
        line = line[len(_BOM):]
    text = line.rstrip(b"\r\n").decode("utf-8", errors="replace")
    return [name.strip() for name in next(csv.reader([text], delimiter=delimiter), [])]


def _readline(stream, limit: int) -> bytes:
    data = b""
    while b"\n" not in data and len(data) < limit:
        chunk = stream.read(65536)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0]


def _ledger_entry(info: dict) -> dict:
    return {"size": info["size"], "mtime": info["mtime"], "fingerprint": info["fingerprint"]}


def appended_to(entry: dict, info: dict) -> bool:
    """True when a plain file only grew since the ledger's entry: its first `size` bytes are the
    ones that were synced (same fingerprint over them), ending at a line end. Then only the lines
    after them are new, and reading from there gives append-only targets no line twice."""
    before = entry.get("size")
    if info["gzip"] or not before or info["size"] <= before or not entry.get("fingerprint"):
        return False
    fs, path = _fs(info["path"])
    try:
        with fs.open(path, "rb") as handle:
            fingerprint = _fingerprint(handle, before)[0]
            handle.seek(before - 1)
            last = handle.read(1)
    except FileNotFoundError:
        return False
    return last == b"\n" and fingerprint == entry["fingerprint"]


def _change(entry: dict, info: dict) -> str:
    before, after = entry.get("size"), info["size"]
    if before is not None and after > before:
        return f"grew from {before} to {after} bytes"
    if before is not None and after < before:
        return f"shrank from {before} to {after} bytes"
    return f"rewritten, same size {after} bytes"


def split_files(files: list[dict], channels: int) -> list[dict]:
    """Pieces to read: whole files, and byte ranges of plain files larger than their share."""
    total = sum(info["weight"] for info in files)
    share = max(total / max(channels, 1), SPLIT_MIN_BYTES)
    pieces = []
    for info in files:
        count, begin = 1, info.get("start", 0)  # a grown file is read from where its last sync ended
        length = info["size"] - begin
        if not info["gzip"] and channels > 1 and length > share:
            count = min(64, math.ceil(length / share))
        for index in range(count):
            start, end = begin + length * index // count, begin + length * (index + 1) // count
            pieces.append({"path": info["path"], "gzip": info["gzip"], "size": info["size"],
                           "start": start, "end": end, "header": info.get("header"),
                           "weight": info["weight"] * (end - start) / max(length, 1)})
    return pieces


def balance(pieces: list[dict], channels: int) -> list[list[dict]]:
    """Pack pieces into at most `channels` groups of about equal weight (largest first)."""
    groups: list[list[dict]] = [[] for _ in range(max(1, min(channels, len(pieces))))]
    loads = [(0.0, index) for index in range(len(groups))]
    heapq.heapify(loads)
    for piece in sorted(pieces, key=lambda p: (-p["weight"], p["path"], p["start"])):
        load, index = heapq.heappop(loads)
        groups[index].append(piece)
        heapq.heappush(loads, (load + piece["weight"], index))
    return [sorted(group, key=lambda p: (p["path"], p["start"])) for group in groups if group]


def _size(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


# ---------------------------------------------------------------- streaming whole lines

class _Bounded:
    """A read-only view of a stream that ends after `limit` bytes (the size fixed at plan time)."""

    def __init__(self, raw, limit: int):
        self.raw, self.left = raw, limit

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        size = self.left if size is None or size < 0 else min(size, self.left)
        data = self.raw.read(size)
        self.left -= len(data)
        return data


def read_blocks(piece: dict, dirty: DirtyLog) -> Iterator[tuple[int, bytes]]:
    """(number of the first line, bytes of whole lines each ending in a newline) of one piece.

    A plain piece owns the lines that start in [start, end); gzip files are always whole.
    A damaged gzip stream keeps the lines before the damage; the rest is one dirty record.
    """
    fs, path = _fs(piece["path"])
    try:
        handle = fs.open(path, "rb")
    except FileNotFoundError:
        raise TransientError(f"{piece['path']} disappeared after planning; rerun to plan again") from None
    with handle:
        end = None
        if piece["gzip"]:
            stream, line, pos = gzip.GzipFile(fileobj=_Bounded(handle, piece["size"]), mode="rb"), 1, 0
        else:
            begin = _first_line_start(handle, piece["start"], piece["size"])
            if begin >= piece["end"]:
                return
            line = 1 + _count_newlines(handle, begin) if begin else 1
            handle.seek(begin)
            stream, pos, end = _Bounded(handle, piece["size"] - begin), 0, piece["end"] - begin
        carry = b""
        opening = piece["start"] == 0  # line 1 starts at 0 (before any byte order mark): this piece's
        try:
            if opening:  # a UTF-8 byte order mark is not part of the first line
                carry = stream.read(len(_BOM))
                if carry == _BOM:
                    carry, pos = b"", len(_BOM)
            while True:
                if end is not None and pos >= end and not opening:  # pos: where the next line starts
                    return
                chunk = stream.read(BLOCK_BYTES)
                data = carry + chunk if carry else chunk
                if not chunk:  # end of file: a last line without its newline is still a line
                    if not data:
                        return
                    if not data.endswith(b"\n"):
                        data += b"\n"
                cut = data.rfind(b"\n")
                if cut < 0:
                    carry = data
                    continue
                block, carry = data[:cut + 1], data[cut + 1:]
                if end is not None and pos + len(block) >= end:
                    yield line, block[:block.find(b"\n", max(0, end - pos - 1)) + 1]
                    return
                yield line, block
                opening = False
                line += block.count(b"\n")
                pos += len(block)
                if not chunk:
                    return
        except (EOFError, OSError, zlib.error) as exc:
            if not piece["gzip"]:
                raise TransientError(f"reading {piece['path']} failed: {exc}") from None
            dirty.add({"file": piece["path"], "line": line},
                      f"gzip: damaged or truncated stream, lines from {line} on are unreadable ({exc})")


def _first_line_start(handle, start: int, size: int) -> int:
    """The offset of the first line that starts at or after `start`."""
    if start == 0:
        return 0
    handle.seek(start - 1)
    position = start - 1
    while position < size:
        chunk = handle.read(min(65536, size - position))
        if not chunk:
            break
        found = chunk.find(b"\n")
        if found >= 0:
            return position + found + 1
        position += len(chunk)
    return size


def _count_newlines(handle, upto: int) -> int:
    handle.seek(0)
    count, left = 0, upto
    while left > 0:
        chunk = handle.read(min(8 << 20, left))
        if not chunk:
            break
        count += chunk.count(b"\n")
        left -= len(chunk)
    return count


# ---------------------------------------------------------------- parsing blocks

class _Parser:
    """Turns blocks of whole lines into batches of the plan schema; bad lines go to `dirty`.

    The lines themselves are parsed by the `RecordParser` every text source shares."""

    def __init__(self, options: LogsSource, fields: dict[str, str], schema: pa.Schema):
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
