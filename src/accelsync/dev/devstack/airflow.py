"""A real Airflow deployment on this machine: CeleryExecutor, PostgreSQL metadata, Redis broker.

`accelsync devstack up airflow` starts (after MariaDB, Redis and PostgreSQL, which it needs) one
supervisor (`accelsync.dev.devstack.supervisor`, the service's pid) running

- `airflow api-server` on 127.0.0.1:8080 (`ACCELSYNC_AIRFLOW_PORT`): the UI, the REST API, the
  execution API the task workers talk to, and the accelsync plugin's report pages;
- `airflow scheduler`, `airflow dag-processor`, `airflow triggerer` (DeadlineAlert callbacks);
- one `airflow celery worker` per business line of the specs (queue `accelsync.<line>`, the
  isolation mapping of `accelsync.airflow.isolation`, switched on here: `ACCELSYNC_QUEUES=true`) and one
  on `default`; each records itself as the task's hostname (`accelsync-<line>.<host>`), and a
  worker that dies is restarted.

Configuration is environment only (no airflow.cfg is written): `deployment_env()` is the whole of
it. The metadata database is the `airflow` database (`ACCELSYNC_AIRFLOW_DATABASE`) of devstack's
PostgreSQL; the Celery broker is Redis database 7 (`ACCELSYNC_AIRFLOW_BROKER_DB`), the Celery
results go to the metadata database. DAGs come from the repository's `dags/` over the specs of
`ACCELSYNC_SPECS` (default `dags/syncs/`), plugins from `plugins/`; every component shares
`ACCELSYNC_HOME` and the connections of `accelsync devstack env`. Login: the simple auth manager
with user `admin` and password `admin` (`ACCELSYNC_AIRFLOW_PASSWORD`), an admin.

Folder `devstack/airflow/`: `home/` (AIRFLOW_HOME: logs, `passwords.json`), `secrets.json` (the
JWT, API and Fernet keys every component must share, made once), one log per process, and
`airflow.log` (the supervisor: which process ended or was restarted). Sized for 2 cores: Celery
concurrency 2 per worker (`ACCELSYNC_AIRFLOW_WORKER_CONCURRENCY`), one API worker, one parsing
process. Any `AIRFLOW__...` tuning variable set when `up` runs wins over the defaults here.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from accelsync.dev.devstack.base import Service
from accelsync.dev.devstack.postgres import Postgres
from accelsync.dev.devstack.process import DevstackError, spawn_detached, tail

SUPERVISOR = "accelsync.dev.devstack.supervisor"
USER = "admin"
DEFAULT_QUEUE = "default"
# Tuning a caller's environment may override (a test sets a short heartbeat timeout, say).
TUNING = {
    "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
    "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
    "AIRFLOW__API__WORKERS": "1",
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
    # A task whose worker vanished (killed, OOM, lost machine) is failed, then retried, after a
    # minute without a heartbeat instead of Airflow's 5.
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    # A Redis broker hands an unacknowledged task to another worker after this many seconds: longer
    # than any sync's timeout.
    "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "86400",
    "ACCELSYNC_QUEUES": "true",
}


def worker_hostname() -> str:
    """`[core] hostname_callable` of the Celery workers: the worker's name on this host, so a
    task instance's `hostname` says which worker ran it (`accelsync-growth.<host>`)."""
    worker = os.environ.get("ACCELSYNC_WORKER_NAME")
    host = socket.getfqdn()
    return f"{worker}.{host}" if worker else host


def _repo_root() -> Path:
    from accelsync.dev.airflow_env import repo_root

    return repo_root()


class Airflow(Service):
    """The whole deployment as one service: its pid is the supervisor's, its port the API server's."""

    name = "airflow"
    label = "Airflow"
    default_port = 8080
    conn_id = "airflow_api"
    process_name = f"{SUPERVISOR} airflow"
    on_demand = True
    requires = ("mysql", "redis", "postgres")
    stop_timeout = 60.0  # the supervisor gives each worker 20 s to finish its tasks

    # -- what the service is made of ------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def postgres(self) -> Postgres:
        return Postgres()  # devstack's own cluster, whatever folder this deployment lives in

    def database(self) -> str:
        return os.environ.get("ACCELSYNC_AIRFLOW_DATABASE") or "airflow"

    def specs_folder(self) -> Path:
        return Path(os.environ.get("ACCELSYNC_SPECS") or _repo_root() / "dags" / "syncs").absolute()

    def password(self) -> str:
        return os.environ.get("ACCELSYNC_AIRFLOW_PASSWORD") or "admin"

    def queues(self) -> list[str]:
        """`default` and the queue of each business line of the specs that validate."""
        from accelsync.errors import SpecError
        from accelsync.airflow.isolation import DEFAULT_QUEUE as TEMPLATE
        from accelsync.spec import load_spec, spec_files

        lines = set()
        for path in spec_files([self.specs_folder()]):
            try:
                lines.add(load_spec(path).business_line)
            except SpecError:
                pass  # a broken spec's stand-in DAG runs on `default`
        template = os.environ.get("ACCELSYNC_QUEUE") or TEMPLATE
        return [DEFAULT_QUEUE, *sorted(template.format(business_line=line) for line in lines)]

    def _secrets(self) -> dict[str, str]:
        """Keys every component must share (tokens signed by one are checked by the others); made
        once per devstack folder, kept out of any log."""
        path = self.dir / "secrets.json"
        if path.exists():
            return json.loads(path.read_text())
        import base64

        values = {"jwt_secret": secrets.token_urlsafe(32), "secret_key": secrets.token_urlsafe(32),
                  "fernet_key": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()}
        path.touch(mode=0o600)
        path.write_text(json.dumps(values))
        return values

    def deployment_env(self) -> dict[str, str]:
        """The environment of every Airflow component of this deployment (its whole config)."""
        from accelsync import runs
        from accelsync.dev import devstack

        pg = self.postgres()
        broker_db = os.environ.get("ACCELSYNC_AIRFLOW_BROKER_DB") or "7"
        redis = devstack.SERVICES["redis"]()
        keys = self._secrets()
        home = self.dir / "home"
        env = {name: os.environ.get(name, value) for name, value in TUNING.items()}
        env.update({name: value for name, value in devstack.connection_env().items() if name not in os.environ})
        env.update({
            "AIRFLOW_HOME": str(home),
            "AIRFLOW_CONFIG": str(home / "airflow.cfg"),  # never written: config is the environment
            "ACCELSYNC_HOME": str(runs.home()),
            "ACCELSYNC_SPECS": str(self.specs_folder()),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__DAGS_FOLDER": str(_repo_root() / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(_repo_root() / "plugins"),
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__FERNET_KEY": keys["fernet_key"],
            "AIRFLOW__CORE__AUTH_MANAGER":
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg.sqlalchemy_url(self.database()),
            "AIRFLOW__CELERY__BROKER_URL": f"redis://{redis.host}:{redis.port}/{broker_db}",
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + pg.sqlalchemy_url(self.database()),
            "AIRFLOW__API__HOST": self.host,
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__API__SECRET_KEY": keys["secret_key"],
            "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW__LOGGING__DAG_PROCESSOR_CHILD_PROCESS_LOG_DIRECTORY": str(home / "logs" / "dag_processor"),
            # Every component shares this machine's disk, so the API server reads task logs from
            # it; the log servers are on ports of this deployment's own (two may run at once).
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.port + 713),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.port + 714),
        })
        return env

    def processes(self, env: dict[str, str]) -> list[dict[str, Any]]:
        airflow = [sys.executable, "-m", "airflow"]
        concurrency = os.environ.get("ACCELSYNC_AIRFLOW_WORKER_CONCURRENCY") or env["AIRFLOW__CELERY__WORKER_CONCURRENCY"]
        processes = [
            {"name": "api-server", "cmd": [*airflow, "api-server", "-H", self.host, "-p", str(self.port)]},
            {"name": "scheduler", "cmd": [*airflow, "scheduler"]},
            {"name": "dag-processor", "cmd": [*airflow, "dag-processor"]},
            {"name": "triggerer", "cmd": [*airflow, "triggerer"]},
        ]
        for queue in self.queues():
            worker = "accelsync-" + queue.removeprefix("accelsync.").replace(".", "-")
            processes.append({
                "name": f"worker-{queue}", "restart": True, "stop_timeout": 20,
                "cmd": [*airflow, "celery", "worker", "--queues", queue, "--concurrency", concurrency,
                        "--celery-hostname", f"{worker}@%h", "--skip-serve-logs", "--without-mingle",
                        "--without-gossip"],
                "env": {"ACCELSYNC_WORKER_NAME": worker,
                        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "accelsync.dev.devstack.airflow.worker_hostname"}})
        for process in processes:
            process["log"] = str(self.dir / f"{process['name']}.log")
            process.setdefault("stop_timeout", 15)
        return processes

    # -- Service ------------------------------------------------------------------------------

    def check(self, timeout: float) -> bool:
        """The API server's health: metadata database, scheduler, triggerer and DAG processor."""
        try:
            health = self._json("GET", "/api/v2/monitor/health", timeout=timeout)
        except (OSError, ValueError, urllib.error.URLError):
            return False
        return all((health.get(part) or {}).get("status") == "healthy"
                   for part in ("metadatabase", "scheduler", "triggerer", "dag_processor"))

    def start(self) -> None:
        self.postgres().create_database(self.database())
        env = self.deployment_env()
        home = Path(env["AIRFLOW_HOME"])
        home.mkdir(parents=True, exist_ok=True)
        passwords = home / "passwords.json"
        passwords.touch(mode=0o600)
        passwords.write_text(json.dumps({USER: self.password()}))
        self._run(["db", "migrate"], env, "airflow db migrate")
        self._run_module(["accelsync.cli", "pools", env["ACCELSYNC_SPECS"]], env, "accelsync pools")
        spec = self.dir / "processes.json"
        spec.write_text(json.dumps({"processes": self.processes(env)}, indent=1))
        spawn_detached([sys.executable, "-m", SUPERVISOR, "airflow", str(spec)], self.log_file, self.pid_file,
                       cwd=self.dir, env=env)

    def prepare(self) -> None:
        """Wait until every Celery worker is ready to take tasks (the API health does not say)."""
        deadline = time.monotonic() + 120
        pending = [p for p in json.loads((self.dir / "processes.json").read_text())["processes"]
                   if p["name"].startswith("worker-")] if (self.dir / "processes.json").exists() else []
        while pending:
            pending = [p for p in pending if " ready." not in Path(p["log"]).read_text(errors="replace")[-200_000:]]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise DevstackError(f"Celery worker {pending[0]['name']} is not ready; {pending[0]['log']} ends:\n"
                                    f"{tail(Path(pending[0]['log']))}")
            time.sleep(0.5)

    def version(self) -> str:
        return f"Apache Airflow {self._json('GET', '/api/v2/version', timeout=2)['version']}"

    def connection(self) -> str:
        return self.base_url

    # -- the REST API, as a user of this deployment -------------------------------------------

    def token(self) -> str:
        """A JWT for the REST API, from the simple auth manager's login endpoint."""
        reply = self._json("POST", "/auth/token", {"username": USER, "password": self.password()}, token=None)
        return reply["access_token"]

    def api(self, method: str, path: str, body: Any = None, token: str | None = None, timeout: float = 30) -> Any:
        """One REST call (`/api/v2/...`) with a token; returns the decoded JSON answer."""
        return self._json(method, path, body, token=token or self.token(), timeout=timeout)

    def _json(self, method: str, path: str, body: Any = None, token: str | None = None, timeout: float = 30) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            text = reply.read()
        return json.loads(text) if text else None

    # -- helpers --------------------------------------------------------------------------------

    def _run(self, args: list[str], env: dict[str, str], what: str) -> None:
        self._run_module(["airflow", *args], env, what)

    def _run_module(self, args: list[str], env: dict[str, str], what: str) -> None:
        with open(self.log_file, "ab") as log:
            log.write(f"$ {what}\n".encode())
            log.flush()
            done = subprocess.run([sys.executable, "-m", *args], cwd=self.dir, env={**os.environ, **env},
                                  stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if done.returncode:
            raise DevstackError(f"`{what}` failed ({done.returncode}); {self.log_file} ends:\n{tail(self.log_file)}")

