"""Redis for the `redis_default` connection, on 127.0.0.1:6379, in memory only."""

from __future__ import annotations

import subprocess

from accelsync.dev.devstack.base import Service
from accelsync.dev.devstack.process import DevstackError, find_binary, tail


class Redis(Service):
    """redis-server daemonized by itself, with persistence off (devstack data is disposable)."""

    name = "redis"
    label = "Redis"
    default_port = 6379
    conn_id = "redis_default"
    process_name = "redis-server"
    package = "redis-server"
    binaries = (("redis-server",),)

    def check(self, timeout: float) -> bool:
        """A `PING` answered with `PONG`."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        client = redis.Redis(host=self.host, port=self.port, socket_timeout=timeout,
                             socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0))
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()

    def version(self) -> str:
        import redis
        client = redis.Redis(host=self.host, port=self.port, socket_timeout=2, socket_connect_timeout=2)
        try:
            return f"Redis {client.info('server')['redis_version']}"
        finally:
            client.close()

    def start(self) -> None:
        cmd = [find_binary("redis-server"), "--daemonize", "yes", "--bind", self.host,
               "--port", str(self.port), "--save", "", "--appendonly", "no", "--dir", str(self.dir),
               "--logfile", str(self.log_file), "--pidfile", str(self.pid_file)]
        done = subprocess.run(cmd, cwd=self.dir, capture_output=True, text=True)
        if done.returncode:
            raise DevstackError(f"redis-server exited with {done.returncode}: "
                                f"{(done.stdout + done.stderr).strip()}\n{tail(self.log_file)}")

    def connection(self) -> str:
        return f"redis://{self.host}:{self.port}/0"
