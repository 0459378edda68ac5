"""The corrections schema and its migrations, applied by the program itself in order, once each.

`schema_version` holds one row per applied migration.  Each back end applies the missing ones inside one
transaction that first takes the database's write lock (SQLite's BEGIN IMMEDIATE, PostgreSQL's advisory
lock), so that several processes starting at once apply each migration exactly once.
"""

from ..core.errors import UsageError

VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied TEXT NOT NULL)"

_CHECKS = """
    label INTEGER NOT NULL CHECK (label BETWEEN 0 AND 9),
    predicted INTEGER CHECK (predicted BETWEEN 0 AND 9),
    model_version TEXT,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'accepted', 'rejected')),
    created TEXT NOT NULL,
    UNIQUE (image_sha256, label)
"""

# (version, {dialect: [statements]}); append only: an applied migration is never edited.
MIGRATIONS = [
    (
        1,
        {
            "sqlite": [
                "CREATE TABLE corrections (id INTEGER PRIMARY KEY, image_sha256 TEXT NOT NULL, "
                "image BLOB NOT NULL CHECK (length(image) = 784)," + _CHECKS + ")",
                "CREATE INDEX corrections_status ON corrections (status)",
            ],
            "postgresql": [
                "CREATE TABLE corrections (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                "image_sha256 TEXT NOT NULL, image BYTEA NOT NULL CHECK (length(image) = 784)," + _CHECKS + ")",
                "CREATE INDEX corrections_status ON corrections (status)",
            ],
        },
    ),
]
LATEST = MIGRATIONS[-1][0]


def pending_migrations(current: int, dialect: str, where: str) -> list[tuple[int, list[str]]]:
    """The migrations after `current`; a store newer than this program is refused rather than misread."""
    if current > LATEST:
        raise UsageError(
            f"the corrections store {where} has schema version {current}, newer than this program's {LATEST}"
        )
    return [(version, steps[dialect]) for version, steps in MIGRATIONS if version > current]


def migrate(run, dialect: str, where: str, now: str) -> None:
    """Bring the schema up to date inside the caller's transaction, which holds the database's write lock."""
    run(VERSION_TABLE)
    ((current,),) = run("SELECT coalesce(max(version), 0) FROM schema_version")
    for version, statements in pending_migrations(current, dialect, where):
        for statement in statements:
            run(statement)
        run("INSERT INTO schema_version (version, applied) VALUES (?, ?)", (version, now))
