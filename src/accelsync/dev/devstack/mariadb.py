"""MariaDB for the `mysql_default` connection: root with an empty password on 127.0.0.1:3306."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from accelsync.dev.devstack.base import Service
from accelsync.dev.devstack.process import DevstackError, find_binary, spawn_detached, tail


class MariaDB(Service):
    """A private MariaDB server: its own datadir under devstack, root reachable over TCP, no password."""

    name = "mysql"
    label = "MariaDB"
    default_port = 3306
    conn_id = "mysql_default"
    process_name = "mariadbd"
    package = "mariadb-server"
    binaries = (("mariadbd", "mysqld"), ("mariadb-install-db", "mysql_install_db"))
    database = "accelsync"

    def check(self, timeout: float) -> bool:
        """`SELECT 1` as root with an empty password, which is what the connection promises."""
        import pymysql

        try:
            conn = pymysql.connect(host=self.host, port=self.port, user="root", password="",
                                   connect_timeout=timeout, read_timeout=timeout)
        except (pymysql.MySQLError, OSError):
            return False
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1")
                return cursor.fetchone() == (1,)
        except (pymysql.MySQLError, OSError):
            return False
        finally:
            conn.close()

    def start(self) -> None:
        data = self.dir / "data"
        if not (data / "mysql").is_dir():
            self._install_db(data)
        cmd = [find_binary("mariadbd", "mysqld"), "--no-defaults", f"--datadir={data}",
               f"--socket={self._socket()}", f"--port={self.port}", f"--bind-address={self.host}",
               f"--pid-file={self.pid_file}", f"--log-error={self.log_file}", "--skip-name-resolve"]
        if os.geteuid() == 0:
            cmd.append("--user=root")  # mariadbd refuses to run as root without it
        spawn_detached(cmd, self.log_file, self.pid_file, cwd=self.dir)

    def prepare(self) -> None:
        """Create the `accelsync` database the connection URI names."""
        import pymysql

        try:
            conn = pymysql.connect(host=self.host, port=self.port, user="root", password="")
            try:
                with conn.cursor() as cursor:
                    cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{self.database}`")
            finally:
                conn.close()
        except pymysql.MySQLError as exc:
            raise DevstackError(f"cannot create database {self.database!r} on {self.address}: {exc}") from None

    def version(self) -> str:
        import pymysql

        conn = pymysql.connect(host=self.host, port=self.port, user="root", password="", connect_timeout=2)
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT VERSION()")
                text = cursor.fetchone()[0]
        finally:
            conn.close()
        return f"MariaDB {text.split('-')[0]}" if "mariadb" in text.lower() else f"MySQL {text}"

    def connection(self) -> str:
        return f"mysql://root@{self.host}:{self.port}/{self.database}"

    def _install_db(self, data: Path) -> None:
        """Initialise a fresh datadir whose root accounts (incl. root@127.0.0.1) have no password."""
        log = self.dir / "install-db.log"
        cmd = [find_binary("mariadb-install-db", "mysql_install_db"), "--no-defaults",
               f"--datadir={data}", "--auth-root-authentication-method=normal", "--skip-test-db"]
        if os.geteuid() == 0:
            cmd.append("--user=root")
        with open(log, "ab") as out:
            failed = subprocess.run(cmd, cwd=self.dir, stdout=out, stderr=subprocess.STDOUT).returncode
        if failed:
            shutil.rmtree(data, ignore_errors=True)  # a half-made datadir would be reused next time
            raise DevstackError(f"mariadb-install-db failed; {log} ends:\n{tail(log)}")

    def _socket(self) -> Path:
        """The server's unix socket; moved to the temp folder when the path is too long for one."""
        path = self.dir / "mysqld.sock"
        if len(str(path)) > 100:
            path = Path(tempfile.gettempdir()) / f"accelsync-mysql-{self.port}.sock"
        return path
