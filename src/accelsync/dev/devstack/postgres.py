"""PostgreSQL for Airflow's metadata database: a private cluster on 127.0.0.1:5433.

Not the distribution's cluster (`pg_lsclusters`, port 5432): devstack runs its own data folder
(`initdb` under `devstack/postgres/data`) on its own port (`ACCELSYNC_POSTGRES_PORT`, 5433), with
the binaries of Debian's `postgresql` package (installed with apt-get when missing). Local
connections are trusted (`postgres` role, no password), like devstack's MariaDB root: a machine's
development server, bound to 127.0.0.1 only.

PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` system user the
Debian package creates, and the server runs as that user. Durability is traded for speed
(`fsync=off`, `synchronous_commit=off`): devstack data is disposable, and Airflow's scheduler
commits often. Data survives `down` / `up`; delete `data/` while it is down to start empty.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from accelsync.dev.devstack.base import Service
from accelsync.dev.devstack.process import DevstackError, tail

SUPERUSER = "postgres"
# Sized for a 2-core machine running a whole Airflow deployment beside it: each Airflow process
# keeps a small SQLAlchemy pool, so 150 connections leave room for a test deployment too.
SETTINGS = {"max_connections": "150", "shared_buffers": "64MB", "fsync": "off",
            "synchronous_commit": "off", "full_page_writes": "off", "log_min_messages": "warning",
            "log_line_prefix": "%m [%p] %d ", "timezone": "UTC"}


def pg_binary(name: str) -> str | None:
    """A PostgreSQL server binary: Debian keeps them in /usr/lib/postgresql/<major>/bin (newest
    major first), off PATH; elsewhere they are on PATH."""
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                         if Path(p).parent.name.isdigit() else 0, reverse=True):
        if os.access(Path(folder) / name, os.X_OK):
            return str(Path(folder) / name)
    return shutil.which(name)


class Postgres(Service):
    """A private PostgreSQL cluster for Airflow's metadata (`airflow` database, role `postgres`)."""

    name = "postgres"
    label = "PostgreSQL"
    default_port = 5433
    conn_id = "airflow_db"
    process_name = "postgres"
    package = "postgresql"
    database = "airflow"
    on_demand = True  # started by `up postgres` / `up airflow`, not by a bare `up`
    stop_signal = signal.SIGINT  # "fast" shutdown: SIGTERM would wait for every client to leave

    def _missing(self) -> list[str]:
        return [name for name in ("initdb", "postgres") if not pg_binary(name)]

    def check(self, timeout: float) -> bool:
        """`SELECT 1` as the `postgres` role without a password, which the connection promises."""
        import psycopg2

        try:
            conn = psycopg2.connect(host=self.host, port=self.port, user=SUPERUSER, dbname="postgres",
                                    connect_timeout=max(1, int(timeout)))
        except psycopg2.Error:
            return False
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1")
                return cursor.fetchone() == (1,)
        except psycopg2.Error:
            return False
        finally:
            conn.close()

    def ensure_installed(self) -> None:
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            raise DevstackError("the PostgreSQL driver is missing: pip install -e '.[celery]' "
                                "(psycopg2, with Airflow's Celery and Postgres providers)") from None
        super().ensure_installed()

    def start(self) -> None:
        data = self.cluster_dir() / "data"
        if not (data / "PG_VERSION").is_file():
            self._initdb(data)
        options = [f"-c {key}={value}" for key, value in SETTINGS.items()]
        cmd = [pg_binary("postgres"), "-D", str(data), "-p", str(self.port), "-h", self.host,
               "-k", str(self._socket_dir()), "-c", f"external_pid_file={self.pid_file}",
               *[part for option in options for part in option.split(" ", 1)]]
        self._own(self.cluster_dir())
        with open(self.log_file, "ab") as log:
            subprocess.Popen(cmd, cwd=self.cluster_dir(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True, **self._as_owner())
        # postgres writes external_pid_file itself once it runs; `up` waits for it to answer.

    def prepare(self) -> None:
        """Create the `airflow` database the connection names."""
        self.create_database(self.database)

    def create_database(self, name: str) -> None:
        """Create database `name` when missing (idempotent)."""
        import psycopg2

        try:
            conn = psycopg2.connect(host=self.host, port=self.port, user=SUPERUSER, dbname="postgres",
                                    connect_timeout=5)
        except psycopg2.Error as exc:
            raise DevstackError(f"cannot connect to {self.label} on {self.address}: {exc}") from None
        conn.autocommit = True
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cursor.fetchone() is None:
                    cursor.execute(f'CREATE DATABASE "{name}"')
        except psycopg2.Error as exc:
            raise DevstackError(f"cannot create database {name!r} on {self.address}: {exc}") from None
        finally:
            conn.close()

    def drop_database(self, name: str) -> None:
        """Drop database `name` if it exists, closing its sessions first (a test deployment's)."""
        import psycopg2

        conn = psycopg2.connect(host=self.host, port=self.port, user=SUPERUSER, dbname="postgres", connect_timeout=5)
        conn.autocommit = True
        try:
            with conn.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            conn.close()

    def version(self) -> str:
        import psycopg2

        conn = psycopg2.connect(host=self.host, port=self.port, user=SUPERUSER, dbname="postgres", connect_timeout=2)
        try:
            with conn.cursor() as cursor:
                cursor.execute("SHOW server_version")
                return f"PostgreSQL {cursor.fetchone()[0].split()[0]}"
        finally:
            conn.close()

    def connection(self) -> str:
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{self.database}"

    def sqlalchemy_url(self, database: str | None = None) -> str:
        """The SQLAlchemy URL of a database of this cluster (Airflow's `sql_alchemy_conn`)."""
        return f"postgresql+psycopg2://{SUPERUSER}@{self.host}:{self.port}/{database or self.database}"

    # -- helpers ---------------------------------------------------------------------------------

    def _as_owner(self) -> dict:
        """Popen arguments that run a command as the cluster's owner (`postgres` when we are root)."""
        if os.geteuid() != 0:
            return {}
        try:
            entry = pwd.getpwnam("postgres")
        except KeyError:
            raise DevstackError("PostgreSQL cannot run as root and there is no `postgres` user "
                                "(the Debian package postgresql creates it)") from None
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": [],
                "env": {**os.environ, "HOME": entry.pw_dir}}

    def cluster_dir(self) -> Path:
        """Where the cluster's data, pid file and socket live: the service folder, unless we are
        root and the `postgres` user cannot reach it (a checkout under a private folder, such as
        a temporary directory): then `/var/tmp/accelsync-postgres-<port>`. Logs stay in the
        service folder either way."""
        if os.geteuid() != 0 or all(os.stat(p).st_mode & 0o001 for p in self.dir.parents if p.exists()):
            return self.dir
        return Path("/var/tmp") / f"accelsync-postgres-{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.cluster_dir() / f"{self.name}.pid"

    def _own(self, path: Path) -> None:
        """As root, give the cluster's folder to `postgres`, which runs the server."""
        if os.geteuid() != 0:
            return
        path.mkdir(parents=True, exist_ok=True)
        entry = pwd.getpwnam("postgres")
        for folder in (path, *path.rglob("*")):
            try:
                os.chown(folder, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
            except FileNotFoundError:
                pass

    def _initdb(self, data: Path) -> None:
        log = self.dir / "initdb.log"
        self._own(self.cluster_dir())
        cmd = [pg_binary("initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
               "--locale=C.UTF-8", "--no-sync"]
        with open(log, "ab") as out:
            failed = subprocess.run(cmd, cwd=self.cluster_dir(), stdout=out, stderr=subprocess.STDOUT,
                                    **self._as_owner()).returncode
        if failed:
            shutil.rmtree(data, ignore_errors=True)  # a half-made cluster would be reused next time
            raise DevstackError(f"initdb failed; {log} ends:\n{tail(log)}")

    def _socket_dir(self) -> Path:
        """The folder of the server's unix socket; the temp folder when the path is too long."""
        if len(str(self.cluster_dir() / f".s.PGSQL.{self.port}")) > 100:
            return Path(tempfile.gettempdir())
        return self.cluster_dir()
