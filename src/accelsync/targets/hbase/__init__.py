"""HBase through its Thrift (1) server: row keys from a template, cells per column. `spec` holds
the options and HBase's naming rules; `target` the writing, gate and errors."""

from accelsync.targets.hbase.spec import HbaseTargetSpec as SPEC

IMPLEMENTATION = "accelsync.targets.hbase.target:HbaseTarget"

__all__ = ["IMPLEMENTATION", "SPEC"]
