"""The two error families of accelsync.

Terminal errors mean the spec or the data is wrong: retrying cannot help, so they fail at once
with a clear message. Transient errors mean a service was unavailable: they are retried with
backoff and then fail with the cause.
"""

from __future__ import annotations


class AccelsyncError(Exception):
    """Base of every error accelsync raises on purpose."""

    retryable = False


class TerminalError(AccelsyncError):
    """The spec or the data is wrong; do not retry."""


class TransientError(AccelsyncError):
    """A service was unavailable; retry with backoff."""

    retryable = True


class SpecError(TerminalError):
    """One or more problems in a spec file, each naming the file and the field."""

    def __init__(self, path: str, problems: list[tuple[str, str]]):
        self.path = path
        self.problems = problems
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [f"{self.path}: {field}: {message}" if field else f"{self.path}: {message}"
                for field, message in self.problems]


class ConnectionConfigError(TerminalError):
    """A connection id does not resolve, or resolves to something unusable."""


class DataError(TerminalError):
    """The data cannot be synced as the spec says (too many dirty records, bad types)."""


class GateFailed(TerminalError):
    """A quality gate check failed; nothing is published."""

    def __init__(self, checks: list[dict]):
        self.checks = checks
        failed = [c for c in checks if not c["passed"]]
        super().__init__("gate failed: " + "; ".join(f"{c['name']}: {c['detail']}" for c in failed))


class SyncTimeout(TerminalError):
    """The run went over the spec's timeout."""
