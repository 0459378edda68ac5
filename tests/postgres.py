"""A real PostgreSQL server for the tests: Debian's `postgresql` package, started in a temporary directory.

It listens on a Unix socket only, in a directory of its own, and trusts local connections (nothing else can
reach it).  initdb and postgres refuse to run as root, and CI runs as root: then both run as `nobody`
(setpriv), in a directory that user owns.  Missing binaries fail the test with the package to install,
never a skip: `make test` installs it.
"""

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse

import pytest

DEBIAN_BINARIES = "/usr/lib/postgresql/*/bin"  # Debian's layout; PATH first, for other systems
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30
UNPRIVILEGED = "nobody"
# A Unix socket only.  fsync off: the tests kill clients, never this server or the machine, so its fsyncs
# would protect nothing here, and each test's CREATE DATABASE would cost seconds of them on a shared disk.
SETTINGS = ["-c", "listen_addresses=", "-c", "port=5432", "-c", "fsync=off"]


def binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"{DEBIAN_BINARIES}/{name}"), reverse=True)), None)
    if found is None:
        pytest.fail(f"PostgreSQL's {name} is not installed: install Debian's `postgresql` package (make test does)")
    return found


class PostgresServer:
    """`with PostgresServer() as server:` a running server; `server.new_database()` gives a fresh one's URL."""

    def __init__(self):
        self.directory = tempfile.mkdtemp(prefix="cnn-mnist-postgres-")
        self.data = os.path.join(self.directory, "data")
        self.socket = os.path.join(self.directory, "socket")
        self.log = os.path.join(self.directory, "server.log")
        self.process = None
        self.databases = 0

    def _as_owner(self, command: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return command
        user = pwd.getpwnam(UNPRIVILEGED)
        return [shutil.which("setpriv"), f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", *command]

    def start(self):
        os.mkdir(self.socket)
        if os.geteuid() == 0:
            user = pwd.getpwnam(UNPRIVILEGED)
            for path in (self.directory, self.socket):
                os.chown(path, user.pw_uid, user.pw_gid)
        initdb = self._as_owner([binary("initdb"), "--auth=trust", "--username=postgres", "-D", self.data])
        result = subprocess.run(initdb, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"initdb failed: {result.stderr}"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                self._as_owner([binary("postgres"), "-D", self.data, "-k", self.socket, *SETTINGS]),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_until_ready()
        return self

    def _wait_until_ready(self):
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"postgres exited with {self.process.returncode}: {self._log_tail()}")
            ready = subprocess.run(
                [binary("pg_isready"), "-h", self.socket, "-U", "postgres", "-d", "postgres"], capture_output=True
            )
            if ready.returncode == 0:
                return
            time.sleep(0.05)
        raise AssertionError(f"postgres was not ready in {START_TIMEOUT_S} s: {self._log_tail()}")

    def _log_tail(self) -> str:
        with open(self.log, errors="replace") as log:
            return " | ".join(log.read().splitlines()[-10:])

    def url(self, database: str) -> str:
        return f"postgresql:///{database}?host={urllib.parse.quote(self.socket, safe='')}&user=postgres"

    def new_database(self) -> str:
        """The URL of a new, empty database, so that each test starts from nothing."""
        import psycopg

        self.databases += 1
        name = f"test_{self.databases}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # "fast shutdown": rolls back open transactions, then exits
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"postgres did not stop in {STOP_TIMEOUT_S} s: {self._log_tail()}") from None
        shutil.rmtree(self.directory)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info):
        self.stop()


def store_url(backend: str, request, tmp_path, name: str = "corrections") -> str:
    """A new store's location for `backend`, "sqlite" or "postgresql" (then the module needs a `postgres` fixture)."""
    if backend == "sqlite":
        return str(tmp_path / f"{name}.sqlite")
    return request.getfixturevalue("postgres").new_database()
