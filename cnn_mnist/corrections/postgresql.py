"""The PostgreSQL back end: psycopg 3 through a psycopg_pool pool, for several servers sharing one store.

Imported only for a postgresql:// store (open_store), so a server without one never pays psycopg's import.
The migrations run on a connection of their own under a transaction-scoped advisory lock: servers starting
at once queue on it, and each finds the schema version the one before it left.
"""

import contextlib
import urllib.parse

import psycopg
import psycopg.conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from ..core.errors import UsageError
from . import schema
from .store import Store, StoreError, now

CONNECT_TIMEOUT_S = 10
# Corrections are a small share of a server's requests: 16 at once each, and four instances sharing one
# server stay well under PostgreSQL's default max_connections of 100.
POOL_SIZE = 16
POOL_WAIT_S = 10  # a request waits this long for a connection before it fails (StoreError)
MIGRATION_LOCK = int.from_bytes(b"cnnmnist", "big") >> 1  # any 63-bit key; the same one in every process


def redacted(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _postgres_placeholders(sql: str) -> str:
    return sql.replace("?", "%s")  # no query here holds a literal "?" or "%"


class PostgresStore(Store):
    def __init__(self, url: str):
        self.where = redacted(url)
        try:
            psycopg.conninfo.conninfo_to_dict(url)
        except psycopg.ProgrammingError as error:
            raise UsageError(f"bad corrections store URL {self.where}: {_one_line(error)}") from error
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as connection:
                with connection.transaction(), connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                    schema.migrate(_runner(cursor), "postgresql", self.where, now())
        except psycopg.Error as error:
            raise UsageError(f"cannot open the corrections store {self.where}: {_one_line(error)}") from error
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=POOL_SIZE,
            timeout=POOL_WAIT_S,
            kwargs={"connect_timeout": CONNECT_TIMEOUT_S},
            check=ConnectionPool.check_connection,  # a server restarted since: a fresh connection, not an error
            open=True,
            name="corrections",
        )

    @contextlib.contextmanager
    def _transaction(self, write: bool):
        try:
            with self._pool.connection() as connection, connection.cursor() as cursor:
                yield _runner(cursor)
        except (psycopg.Error, PoolTimeout) as error:
            raise StoreError(f"the corrections store {self.where}: {_one_line(error)}") from error

    def backup(self, path: str) -> None:
        """PostgreSQL's own tool does it consistently, with the schema and its version, restorable by psql."""
        raise UsageError(
            f"a PostgreSQL store is backed up with pg_dump, not this command: pg_dump --dbname='{self.where}' > {path}"
        )

    def close(self) -> None:
        self._pool.close()


def _runner(cursor):
    def run(sql, params=()):
        cursor.execute(_postgres_placeholders(sql), params)
        return cursor.fetchall() if cursor.description else []

    return run
