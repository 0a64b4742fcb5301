"""`accelsync devstack`: the local services the demo and the integration tests run against.

Each service reuses a healthy server already on its port, or starts its own in the background
with data and logs under `$ACCELSYNC_HOME/devstack/<service>/` (ACCELSYNC_HOME defaults to
`./.accelsync`; `ACCELSYNC_DEVSTACK_HOME` replaces the whole `.../devstack` folder). `down`
stops only what devstack started. `env` prints the Airflow connections (`AIRFLOW_CONN_<ID>`)
that point at them. Hosts and ports: `ACCELSYNC_<SERVICE>_HOST` / `ACCELSYNC_<SERVICE>_PORT`.

PostgreSQL and Airflow are started only when named (`up airflow`, which brings up what it
`requires` first: MariaDB, Redis, PostgreSQL); `down` without names stops them too, and `status`
without names shows them when they are up.

Adding a service (e.g. Apache HBase with its Thrift server on 9090, Apache Druid on 8888) means
one module with a `Service` subclass and one line in `SERVICES`.
"""

from __future__ import annotations

import sys

from accelsync.dev.devstack.airflow import Airflow
from accelsync.dev.devstack.base import Service, ServiceStatus, devstack_home
from accelsync.dev.devstack.druid import Druid
from accelsync.dev.devstack.hbase import Hbase
from accelsync.dev.devstack.kafka import Kafka
from accelsync.dev.devstack.mariadb import MariaDB
from accelsync.dev.devstack.postgres import Postgres
from accelsync.dev.devstack.process import DevstackError
from accelsync.dev.devstack.redis import Redis

__all__ = ["SERVICES", "DevstackError", "Service", "ServiceStatus", "command", "connection_env",
           "devstack_home", "down", "env_lines", "services", "status", "up"]

# Started in this order, stopped in reverse.
SERVICES: dict[str, type[Service]] = {
    MariaDB.name: MariaDB,
    Redis.name: Redis,
    Kafka.name: Kafka,
    Hbase.name: Hbase,
    Druid.name: Druid,
    Postgres.name: Postgres,
    Airflow.name: Airflow,
}
ALIASES = {"mariadb": "mysql"}


def services(names: list[str] | None = None, on_demand: bool = True) -> list[Service]:
    """Service instances for `names` (when None: all, or with `on_demand=False` those a bare `up`
    starts), configured from the environment now."""
    if names:
        wanted = [ALIASES.get(n, n) for n in names]
    else:
        wanted = [n for n, cls in SERVICES.items() if on_demand or not cls.on_demand]
    unknown = [n for n in wanted if n not in SERVICES]
    if unknown:
        raise DevstackError(f"unknown service {', '.join(unknown)}; known: {', '.join(SERVICES)}")
    return [SERVICES[n]() for n in dict.fromkeys(wanted)]


def with_requirements(names: list[str]) -> list[str]:
    """`names` preceded by the services they need (`airflow` needs mysql, redis, postgres)."""
    ordered: list[str] = []

    def add(name: str) -> None:
        name = ALIASES.get(name, name)
        for needed in SERVICES[name].requires if name in SERVICES else ():  # unknown: services() says so
            add(needed)
        if name not in ordered:
            ordered.append(name)

    for name in names:
        add(name)
    return ordered


def up(names: list[str] | None = None) -> list[ServiceStatus]:
    """Make every service answer: reuse a healthy server, else start one. Raises DevstackError.
    A bare `up` starts the default services; named ones come after the services they require."""
    results, errors, failed = [], [], set()
    for service in services(with_requirements(names) if names else None, on_demand=False):
        missing = failed & set(service.requires)
        if missing:
            failed.add(service.name)
            errors.append(f"{service.name}: not started, it needs {', '.join(sorted(missing))}")
            continue
        try:
            results.append(service.up())
        except DevstackError as exc:
            failed.add(service.name)
            errors.append(f"{service.name}: {exc}")
    if errors:
        raise DevstackError("\n".join(errors))
    return results


def down(names: list[str] | None = None) -> list[str]:
    """Stop the services devstack started; leave reused ones running. One line per service."""
    return [service.down() for service in reversed(services(names))]


def status(names: list[str] | None = None) -> list[ServiceStatus]:
    """Whether each service answers on its address, and whether devstack started it. Without
    names: the default services, and the on-demand ones (postgres, airflow) that are up."""
    results = [service.status() for service in services(names)]
    if names:
        return results
    return [r for r in results if r.up or not SERVICES[r.name].on_demand]


def connection_env() -> dict[str, str]:
    """`AIRFLOW_CONN_<ID>` variables for the data services, in forms Airflow accepts (URI or JSON)."""
    return {f"AIRFLOW_CONN_{s.conn_id.upper()}": s.connection() for s in services(on_demand=False)}


def env_lines() -> list[str]:
    """Shell `export NAME='value'` lines for `connection_env()`, single-quoted for sh/bash/zsh."""
    return [f"export {name}='{_sh_single_quote(value)}'" for name, value in connection_env().items()]


def command(action: str, names: list[str] | None = None) -> int:
    """Run `accelsync devstack <action>`: print the outcome, return the exit code (0 ok, 1 error)."""
    try:
        if action == "up":
            for result in up(names):
                print(result.line())
        elif action == "down":
            print("\n".join(down(names)))
        elif action == "status":
            for result in status(names):
                print(result.line())
        elif action == "env":
            print("\n".join(env_lines()))
        else:
            raise DevstackError(f"unknown action {action!r}; use up, down, status or env")
    except DevstackError as exc:
        if action == "up":  # show what did come up before the failure
            _print_status(names)
        print(f"accelsync devstack {action}: {exc}", file=sys.stderr)
        return 1
    return 0


def _print_status(names: list[str] | None) -> None:
    try:
        results = status(names)
    except DevstackError:
        return
    for result in results:
        print(result.line())


def _sh_single_quote(value: str) -> str:
    return value.replace("'", "'\"'\"'")
