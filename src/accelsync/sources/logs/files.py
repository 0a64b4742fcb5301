"""Which files a logs source reads: listing through fsspec, fingerprints, the incremental ledger's
entries and changes, and splitting and balancing the work over channels."""

from __future__ import annotations

import csv
import gzip
import hashlib
import heapq
import math
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from accelsync.errors import TerminalError, TransientError
from accelsync.sources.logs.blocks import BOM, Bounded, filesystem


HEAD_BYTES = 64 * 1024           # fingerprint: this much of the head and of the tail
SPLIT_MIN_BYTES = 128 * 1024 * 1024   # a plain file is split only into ranges at least this big
_GZIP_MAGIC = b"\x1f\x8b"


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
    fs, root = filesystem(path)

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
    fs, path = filesystem(uri)
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
    fs, path = filesystem(uri)
    with fs.open(path, "rb") as handle:
        stream = gzip.GzipFile(fileobj=Bounded(handle, size), mode="rb") if zipped else Bounded(handle, size)
        line = _readline(stream, 1 << 20)
    if line.startswith(BOM):
        line = line[len(BOM):]
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


def ledger_entry(info: dict) -> dict:
    return {"size": info["size"], "mtime": info["mtime"], "fingerprint": info["fingerprint"]}


def appended_to(entry: dict, info: dict) -> bool:
    """True when a plain file only grew since the ledger's entry: its first `size` bytes are the
    ones that were synced (same fingerprint over them), ending at a line end. Then only the lines
    after them are new, and reading from there gives append-only targets no line twice."""
    before = entry.get("size")
    if info["gzip"] or not before or info["size"] <= before or not entry.get("fingerprint"):
        return False
    fs, path = filesystem(info["path"])
    try:
        with fs.open(path, "rb") as handle:
            fingerprint = _fingerprint(handle, before)[0]
            handle.seek(before - 1)
            last = handle.read(1)
    except FileNotFoundError:
        return False
    return last == b"\n" and fingerprint == entry["fingerprint"]


def change_of(entry: dict, info: dict) -> str:
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


def size_text(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
