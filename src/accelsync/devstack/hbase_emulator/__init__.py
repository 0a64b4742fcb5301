"""An HBase Thrift (v1) server emulator for the demo and the tests: test infrastructure, never
product logic.

It serves happybase's own `Hbase.thrift` IDL with thriftpy2 (binary protocol over buffered
transport by default, `--compact` / `--framed` as HBase's thrift server flags; one thread per
connection), so accelsync and users talk to it with happybase unchanged. Tables, families
with `maxVersions`, sorted rows, versioned cells, delete markers, scanners and HBase's errors (`IOError` naming TableNotFoundException / NoSuchColumnFamilyException, `AlreadyExists`)
behave as on HBase 2's Thrift server. Run it with

    python -m accelsync.devstack.hbase_emulator --port 9090 --data-dir DIR

(`accelsync devstack up` does). With `--data-dir` the tables are saved there (a pickle snapshot,
periodically and at shutdown) and loaded at start.

Where it differs from HBase: one region per table, no TTL expiry, no compression or bloom
filters (accepted and reported, not applied), only a few filters (see `scan`), no Thrift2 API
nor HTTP transport, no security, and a mutateRows call is checked whole before any of it applies
(HBase may apply some rows of a failing batch).
"""
