"""A private Redis and a private PostgreSQL cluster that a test may crash and restart.

The machine's shared Redis (6379) and PostgreSQL (5432) serve other test runs: a fault-injection
run never restarts or flushes them. It starts its own instead, each on a free port in a temporary
directory: ``redis-server`` with nothing on disk (a restart loses every queued message, as a
broker crash without persistence does), and a PostgreSQL cluster made with ``initdb`` (run as the
``postgres`` user when we are root: PostgreSQL refuses to run as root), trust auth on 127.0.0.1.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

from worker.sandbox.stack import free_port, wait_for


class PrivateRedis:
    """``redis-server`` on a free port, no persistence; ``crash()`` is kill -9, ``start()`` again."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @staticmethod
    def unavailable() -> str:
        """Why a private Redis cannot be started here ("" when it can)."""
        return "" if shutil.which("redis-server") else "redis-server is not installed"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._log is None:
            self._log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--dir", str(self.workdir)],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(self.ping, 20, f"the private Redis on port {self.port}", every=0.1)

    def crash(self) -> None:
        """kill -9: every message in it is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PrivatePostgres:
    """A PostgreSQL cluster of its own in a temporary directory, on a free port; ``crash()`` is an
    immediate shutdown (no checkpoint: the next start replays the WAL, as after a crash)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.bin = _pg_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="autofulfill-chaos-pg-"))
        self.data = self.dir / "data"
        self._root = hasattr(os, "geteuid") and os.geteuid() == 0
        self._initialised = False

    @staticmethod
    def unavailable() -> str:
        """Why a private PostgreSQL cannot be started here ("" when it can)."""
        if _pg_bin() is None:
            return "PostgreSQL's server binaries (initdb, pg_ctl) are not installed"
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            if shutil.which("runuser") is None:
                return "running as root without runuser: PostgreSQL refuses to run as root"
            try:
                import pwd

                pwd.getpwnam("postgres")
            except KeyError:
                return "running as root and there is no 'postgres' user to run PostgreSQL as"
        return ""

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/chaos"

    def _run(self, *command: str, timeout: float = 120) -> None:
        assert self.bin is not None
        argv = [str(self.bin / command[0]), *command[1:]]
        if self._root:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                              cwd=str(self.dir))
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command[:2])} failed ({done.returncode}): "
                               f"{(done.stderr or done.stdout).strip()[-2000:]}")

    def start(self) -> None:
        if not self._initialised:
            if self._root:
                shutil.chown(self.dir, "postgres", "postgres")
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                      "--no-sync")
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c full_page_writes=off -c max_connections=300 -c shared_buffers=64MB")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "postgres.log"), "-w", "-t", "60",
                  "-o", options, "start")
        if not self._initialised:
            import psycopg

            with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                                 autocommit=True) as conn:
                conn.execute("CREATE DATABASE chaos")
            self._initialised = True

    def crash(self) -> None:
        """Immediate shutdown: every connection is cut, nothing is checkpointed."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "60", "stop")

    def stop(self) -> None:
        if self._initialised:
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")
            except (RuntimeError, subprocess.TimeoutExpired):
                self._kill_leftovers()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _kill_leftovers(self) -> None:
        pidfile = self.data / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return
        try:
            os.kill(pid, signal.SIGQUIT)
        except ProcessLookupError:
            return
        time.sleep(2)
