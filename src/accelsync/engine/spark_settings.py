"""Where a sync's Spark application runs: the deployment's settings, then the spec's `spark:` section.

A deployment sets them once, for the CLI, spark-submit and Airflow alike:
- a YAML file named by `ACCELSYNC_SPARK_CONFIG`, with the fields of a spec's `spark:` section
  (master, executors, executor_cores, executor_memory, driver_memory, conf) plus `code` and `python`;
- environment variables, which win over the file: `ACCELSYNC_SPARK_MASTER`,
  `ACCELSYNC_SPARK_EXECUTORS`, `ACCELSYNC_SPARK_EXECUTOR_CORES`, `ACCELSYNC_SPARK_EXECUTOR_MEMORY`,
  `ACCELSYNC_SPARK_DRIVER_MEMORY`, `ACCELSYNC_SPARK_CODE`, `ACCELSYNC_SPARK_PYTHON`.
A spec's `spark:` section wins over both, field by field (`conf` is merged key by key).

No master (or a `local` one) means Spark's local mode in the calling process: the default.
How accelsync's own code reaches the executors on a cluster (`code`):
- `ship` (default): a zip of the installed `accelsync` package goes with the job (`--py-files` /
  `SparkContext.addPyFile`); the workers' Python needs accelsync's dependencies, not accelsync.
- `installed`: the workers run an environment with accelsync installed (the same image or venv),
  so Spark's Python worker daemon preloads it (`accelsync.engine.spark_daemon`), saving imports per task.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace
from typing import Literal

import yaml

from accelsync.errors import TerminalError

CONFIG_ENV = "ACCELSYNC_SPARK_CONFIG"
_ENV_FIELDS = {"master": "ACCELSYNC_SPARK_MASTER", "executors": "ACCELSYNC_SPARK_EXECUTORS",
               "executor_cores": "ACCELSYNC_SPARK_EXECUTOR_CORES",
               "executor_memory": "ACCELSYNC_SPARK_EXECUTOR_MEMORY",
               "driver_memory": "ACCELSYNC_SPARK_DRIVER_MEMORY", "code": "ACCELSYNC_SPARK_CODE",
               "python": "ACCELSYNC_SPARK_PYTHON"}
_INTEGERS = ("executors", "executor_cores")
DAEMON_MODULE = "accelsync.engine.spark_daemon"


@dataclass(frozen=True)
class SparkSettings:
    """The resolved settings of one Spark application."""

    master: str | None = None
    executors: int | None = None
    executor_cores: int | None = None
    executor_memory: str | None = None
    driver_memory: str | None = None
    conf: dict[str, str] = field(default_factory=dict)
    code: Literal["ship", "installed"] = "ship"
    python: str | None = None

    @property
    def is_cluster(self) -> bool:
        """False for local mode (no master, or `local`, `local[4]` ...)."""
        return bool(self.master) and not self.master.startswith("local")

    def spark_conf(self) -> dict[str, str]:
        """The Spark properties these settings stand for (master and code shipping aside)."""
        conf: dict[str, str] = {}
        if self.is_cluster:
            if self.executor_cores:
                conf["spark.executor.cores"] = str(self.executor_cores)
            if self.executors:
                conf["spark.executor.instances"] = str(self.executors)
                if self.master.startswith("spark://"):  # standalone sizes an app by its total cores
                    conf["spark.cores.max"] = str(self.executors * (self.executor_cores or 1))
            if self.executor_memory:
                conf["spark.executor.memory"] = self.executor_memory
        if self.driver_memory:
            conf["spark.driver.memory"] = self.driver_memory
        conf["spark.pyspark.python"] = self.python or os.environ.get("PYSPARK_PYTHON") or sys.executable
        if not self.is_cluster or self.code == "installed":
            conf["spark.python.daemon.module"] = DAEMON_MODULE
        conf.update(self.conf)
        return conf


def deployment() -> SparkSettings:
    """The deployment's settings: the config file, then the environment."""
    values: dict = {}
    path = os.environ.get(CONFIG_ENV)
    if path:
        values.update(_read_file(path))
    for name, env in _ENV_FIELDS.items():
        raw = os.environ.get(env)
        if raw:
            values[name] = _env_value(name, env, raw)
    return _checked(values, path or "environment")


def for_spec(spec=None) -> SparkSettings:
    """The deployment's settings with the spec's `spark:` section over them."""
    settings = deployment()
    override = getattr(spec, "spark", None)
    if override is None:
        return settings
    changes = {name: value for name, value in override.model_dump(exclude={"conf"}).items() if value is not None}
    return replace(settings, **changes, conf={**settings.conf, **override.conf})


def _read_file(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise TerminalError(f"{CONFIG_ENV}={path}: cannot read the Spark settings: {exc}") from None
    if not isinstance(data, dict):
        raise TerminalError(f"{path}: Spark settings are a mapping (master, executors, ...)")
    return data


def _env_value(name: str, env: str, raw: str):
    if name not in _INTEGERS:
        return raw
    try:
        return int(raw)
    except ValueError:
        raise TerminalError(f"{env}={raw!r} is not a whole number") from None


def _checked(values: dict, where: str) -> SparkSettings:
    """Validate with the spec's own model, so a file, a variable and a spec accept the same."""
    from pydantic import ValidationError

    from accelsync.spec import SparkOptions

    extra = {key: values.pop(key) for key in ("code", "python") if key in values}
    if extra.get("code", "ship") not in ("ship", "installed"):
        raise TerminalError(f"{where}: code: must be ship or installed (got {extra['code']!r})")
    try:
        options = SparkOptions.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise TerminalError(f"{where}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    return SparkSettings(**options.model_dump(), **extra)
