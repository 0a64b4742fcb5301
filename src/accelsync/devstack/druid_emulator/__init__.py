"""An Apache Druid HTTP API emulator for the demo and the tests: test infrastructure, never
product logic.

One router-style port serves the paths accelsync (and a user's own scripts) use, with Druid's
JSON shapes, status codes and kinds of error messages:

- Overlord: `POST /druid/indexer/v1/task` (native batch `index_parallel` / `index` tasks),
  `GET .../task/{id}`, `.../task/{id}/status`, `.../task/{id}/reports`, `POST .../task/{id}/shutdown`,
  `GET /druid/indexer/v1/tasks`. Tasks run asynchronously: RUNNING, then SUCCESS or FAILED.
  A spec Druid cannot deserialise is refused with HTTP 400 `{"error": ...}` at submit.
- Coordinator: `GET /druid/coordinator/v1/datasources[/{ds}[/loadstatus]]`, `GET .../loadstatus`,
  `DELETE .../datasources/{ds}` (mark all segments unused), `POST .../datasources/{ds}/markUnused`.
- Broker: `POST /druid/v2/sql` (resultFormat object, array, objectLines, arrayLines, csv; dynamic
  parameters), answered by SQLite (`sql`); `__time` reads back as `2024-01-01T00:00:00.000Z`.
- `GET /status/health` (true) and `GET /status`.

Ingestion (`ingest`): input sources `inline` and `local` (baseDir + filter, recursive, or files;
`.gz` decompressed), input formats `json` (one object per line), `csv` and `tsv`; timestampSpec
(auto, iso, millis, posix, micro, nano, ruby, Joda patterns; missingValue); dimensionsSpec (names
or typed string/long/float/double/json objects, or schemaless discovery with exclusions);
metricsSpec count, long/double/float Sum/Min/Max; granularitySpec segment/query granularity,
rollup (default true, as in Druid), intervals (rows outside are thrown away); appendToExisting
and dropExisting; tuningConfig maxParseExceptions / reportParseExceptions /
maxSavedParseExceptions, with Druid's row counters and parse-exception messages.

Replace semantics are Druid's: a task that does not append overshadows the time chunks (its
segmentGranularity) it has data for; with dropExisting and intervals, everything in the
intervals. Publishing is atomic (one SQLite transaction). Test hooks in the task context:
`emulatorDelaySeconds` and `emulatorFailWith` (see `tasks`).

Where it differs from Druid: one process, no segment files or handoff (published data is
queryable at once, loadstatus is always 100%), no parallel subtasks or partitionsSpec, no
transformSpec / flattenSpec / legacy parser, no multi-value dimension semantics (a JSON array is
stored as its JSON text), SQL is SQLite's dialect behind a rewriting layer (no INFORMATION_SCHEMA
or sys tables, no MSQ INSERT/REPLACE, no approximate algorithms), and a datasource's schema is
the union of every column it ever had.

    python -m accelsync.devstack.druid_emulator --port 8888 --data-dir DIR

(`accelsync devstack up` runs it; with `--data-dir` datasources persist in SQLite files there.)
"""
