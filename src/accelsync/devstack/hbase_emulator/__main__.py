"""`python -m accelsync.devstack.hbase_emulator`: run the HBase Thrift emulator in the foreground."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from accelsync.devstack.hbase_emulator.server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m accelsync.devstack.hbase_emulator",
                                     description="HBase Thrift (v1) server emulator, for tests and demos.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9090)
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="keep tables here across restarts (default: in memory only)")
    parser.add_argument("--snapshot-seconds", type=float, default=30.0,
                        help="save changed tables this often (and always at shutdown)")
    parser.add_argument("--compact", action="store_true", help="compact protocol (HBase's thrift -compact)")
    parser.add_argument("--framed", action="store_true", help="framed transport (HBase's thrift -framed)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(args.host, args.port, args.data_dir, args.snapshot_seconds, args.compact, args.framed)


if __name__ == "__main__":
    main()
