"""The SQLite back end: one file, WAL mode, synchronous=FULL, one connection behind a lock.

Durability: in WAL mode a commit appends to the -wal file; with synchronous=FULL SQLite also fsyncs the
WAL at every commit, so an acknowledged correction survives `kill -9` of the process *and* a power loss or
OS crash.  NORMAL would survive `kill -9` too (the written pages sit in the OS's cache, which outlives the
process: "transactions are durable across application crashes regardless of the synchronous setting",
https://www.sqlite.org/pragma.html#pragma_synchronous), but "a transaction committed in WAL mode with
synchronous=NORMAL might roll back following a power loss or system crash".  A correction is a person's
effort and comes at a human rate, so one fsync each is cheap; FULL it is (tests/test_corrections_store.py
kills a writer with SIGKILL and finds every acknowledged correction).

Concurrency: SQLite lets one writer at a time into a file whatever the connections, so one connection
serialised by a lock costs this process nothing and closes exactly; other processes are waited for by the
busy timeout, and every write transaction is BEGIN IMMEDIATE (it takes the write lock first, so it never
has to upgrade a read lock and fail with SQLITE_BUSY halfway).
"""

import contextlib
import os
import sqlite3
import tempfile
import threading

from ..core.errors import UsageError
from . import schema
from .store import Store, StoreError, now

BUSY_TIMEOUT_S = 30  # other processes' write transactions are milliseconds; this is for a stalled disk


class SqliteStore(Store):
    def __init__(self, path: str):
        self.where = path
        self._lock = threading.Lock()
        self._connection = None
        try:
            self._connection = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            (mode,) = self._connection.execute("PRAGMA journal_mode = WAL").fetchone()
            if mode != "wal":
                raise UsageError(f"the corrections store {path} cannot use SQLite's WAL mode (journal mode {mode})")
            self._connection.execute("PRAGMA synchronous = FULL")
            with self._transaction(write=True) as run:
                schema.migrate(run, "sqlite", path, now())
        except (sqlite3.Error, StoreError) as error:
            self.close()
            raise UsageError(f"cannot open the corrections store {path}: {error}") from error
        except BaseException:
            self.close()
            raise

    @contextlib.contextmanager
    def _transaction(self, write: bool):
        with self._lock:
            connection = self._connection
            if connection is None:
                raise StoreError(f"the corrections store {self.where} is closed")

            def run(sql, params=()):
                return connection.execute(sql, params).fetchall()

            try:
                connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            except sqlite3.Error as error:
                raise StoreError(f"the corrections store {self.where}: {error}") from error
            try:
                yield run
                connection.execute("COMMIT")
            except BaseException as error:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                if isinstance(error, sqlite3.Error):
                    raise StoreError(f"the corrections store {self.where}: {error}") from error
                raise

    def backup(self, path: str) -> None:
        """SQLite's online backup into a file beside `path`, then renamed over it: never a half-written backup."""
        directory = os.path.dirname(os.path.abspath(path))
        try:
            descriptor, partial = tempfile.mkstemp(prefix=".backup-", suffix=".sqlite", dir=directory)
        except OSError as error:
            raise UsageError(f"cannot write a backup in {directory}: {error.strerror}") from error
        os.close(descriptor)
        try:
            target = sqlite3.connect(partial)
            try:
                with self._lock:
                    self._connection.backup(target)
            finally:
                target.close()
            with open(partial, "rb") as written:
                os.fsync(written.fileno())
            os.replace(partial, path)
        except sqlite3.Error as error:
            raise StoreError(f"the backup of {self.where} failed: {error}") from error
        except OSError as error:
            raise UsageError(f"cannot write the backup {path}: {error.strerror}") from error
        finally:
            if os.path.exists(partial):
                os.unlink(partial)

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
