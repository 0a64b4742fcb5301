"""Log files: plain or gzip, matched by a glob or folder, parsed line by line. `spec` holds the
options and their checks; `source` planning and reading; `files` listing, fingerprints and
splitting; `blocks` streaming whole lines."""

from accelsync.sources.logs.spec import LogsSourceSpec as SPEC

IMPLEMENTATION = "accelsync.sources.logs.source:LogsSource"

__all__ = ["IMPLEMENTATION", "SPEC"]
