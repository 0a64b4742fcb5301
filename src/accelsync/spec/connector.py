"""What a connector's spec model says about itself, so the spec's checks need no branch on a type.

A source's options model subclasses `SourceSpec`, a target's `TargetSpec`; each lives in its
connector's folder (`sources/<type>/spec.py`, `targets/<type>/spec.py`), light enough for Airflow
to import when it parses DAGs.
"""

from __future__ import annotations

from typing import Any, ClassVar, Optional

from accelsync.spec.fields import Model


class SourceSpec(Model):
    """The `source:` section of one source type."""

    # Columns every record of this source carries besides its own fields (templates, transforms).
    META_COLUMNS: ClassVar[tuple[str, ...]] = ()
    # The commented `source:` block `accelsync new` writes (str.format with `name`).
    STARTER: ClassVar[str] = ""

    def known_columns(self) -> Optional[list[str]]:
        """The columns the source yields, when known without reading it; else None."""
        return None

    def new_only(self) -> Optional[str]:
        """Why a run reads only what is new since the last run (None: it reads everything)."""
        return None

    @classmethod
    def new_only_in(cls, data: dict[str, Any]) -> bool:
        """The same, told from the raw `source:` mapping (before it is validated)."""
        return False

    def rereads(self) -> Optional[tuple[str, str]]:
        """(field, why) when a run reads rows an earlier run read already (keyed targets only)."""
        return None


class TargetSpec(Model):
    """The `target:` section of one target type."""

    keyed: ClassVar[bool] = True  # writing a row again replaces it (Redis keys, HBase rows)
    # The commented `target:` block `accelsync new` writes (str.format with `name`, `mode`).
    STARTER: ClassVar[str] = ""

    @property
    def visible_before_gate(self) -> bool:
        """True when readers see written rows before the gate passed (no staging)."""
        return False

    def columns_used(self) -> dict[str, list[str]]:
        """Source columns the target names, by field (checked against the source's columns)."""
        return {}

    def asset_uri(self) -> str:
        raise NotImplementedError

    def check_source(self, source: SourceSpec) -> None:
        """Raise FieldError when this target cannot keep its promise with that source."""

    @classmethod
    def complete(cls, target: dict[str, Any], new_only: bool) -> dict[str, Any]:
        """Defaults that depend on the source, filled into the raw `target:` mapping."""
        return target
