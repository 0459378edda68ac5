"""The corrections store: `open_store(url)` and what its two back ends (SQLite, PostgreSQL) share.

A correction is a 28x28 uint8 image with the label a person says it shows.  Its key is the image's sha256
and the label: the same image with the same label again is the same correction (a unique key and
INSERT ... ON CONFLICT DO NOTHING, so it holds across threads and processes, not a check-then-insert).
Every correction starts "pending"; only a reviewer's `accept` lets it into an export.
"""

from __future__ import annotations  # `Store.list` would shadow the builtin in its own annotations

import datetime
import hashlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import numpy as np

from ..core.errors import UsageError

STATUSES = ("pending", "accepted", "rejected")
LABELS = range(10)
SHAPE = (28, 28)
MAX_MODEL_VERSION = 256  # characters: a version string, not a document
IDS_PER_STATEMENT = 500  # well under SQLite's 32766 and PostgreSQL's 65535 parameters a statement

Run = Callable[..., list[tuple]]  # run(sql, params) -> rows, inside one transaction
COLUMNS = "id, image, label, predicted, model_version, status, created"


class StoreError(Exception):
    """The database failed under a running program (gone, full, locked past the busy timeout): not bad input."""


@dataclass(frozen=True)
class Correction:
    id: str
    image: np.ndarray = field(repr=False)  # (28, 28) uint8, read-only
    label: int
    predicted: int | None
    model_version: str | None
    status: str
    created: str  # UTC, ISO 8601


def is_postgresql_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def open_store(url: str) -> Store:
    """A SQLite file's path, or a postgresql:// URL; psycopg is imported only for the latter (its import costs)."""
    if not url:
        raise UsageError("no corrections store given: a SQLite file's path or a postgresql:// URL")
    if is_postgresql_url(url):
        from .postgresql import PostgresStore

        return PostgresStore(url)
    if "://" in url:
        raise UsageError(f"unknown corrections store {url.split('://')[0]}://...: a file's path or a postgresql:// URL")
    from .sqlite import SqliteStore

    return SqliteStore(url)


def image_key(image: np.ndarray) -> str:
    """The sha256 of the image's 784 bytes, row by row: the image's half of a correction's key."""
    return hashlib.sha256(np.ascontiguousarray(image, dtype=np.uint8).tobytes()).hexdigest()


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def checked_status(status: str) -> str:
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}: one of {', '.join(STATUSES)}")
    return status


def _checked_digit(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) not in LABELS:
        raise ValueError(f"{name} must be an integer from 0 to 9, not {value!r}")
    return int(value)


def _checked_image(image) -> bytes:
    if not isinstance(image, np.ndarray) or image.shape != SHAPE or image.dtype != np.uint8:
        described = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"the image must be a (28, 28) uint8 array, not {described}")
    return np.ascontiguousarray(image).tobytes()


def _numbers(ids: Iterable[str]) -> tuple[dict[int, str], list[str]]:
    """({row id: the id as given}, the ids that are no row's number at all, so unknown)."""
    numbers, malformed = {}, []
    for given in ids:
        text = str(given)
        if text.isascii() and text.isdigit():
            numbers[int(text)] = text
        else:
            malformed.append(text)
    return numbers, malformed


def _chunks(items: list, size: int = IDS_PER_STATEMENT) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _placeholders(count: int) -> str:
    return ", ".join("?" * count)


class Store:
    """The queries both back ends run; each supplies `_transaction(write)`, a context giving `run`.

    Placeholders are written `?` here; the PostgreSQL back end turns them into psycopg's `%s`.
    """

    where: str  # the store as messages name it (a URL without its password)

    def _transaction(self, write: bool) -> AbstractContextManager[Run]:
        raise NotImplementedError

    def add(self, image: np.ndarray, label: int, predicted: int | None = None, model_version: str | None = None):
        """(id, created): a repeat of the same image and label returns the existing id and adds nothing."""
        pixels = _checked_image(image)
        label = _checked_digit("label", label)
        predicted = None if predicted is None else _checked_digit("predicted", predicted)
        if model_version is not None and (not isinstance(model_version, str) or len(model_version) > MAX_MODEL_VERSION):
            raise ValueError(f"model_version must be a string of at most {MAX_MODEL_VERSION} characters")
        key = hashlib.sha256(pixels).hexdigest()
        with self._transaction(write=True) as run:
            rows = run(
                "INSERT INTO corrections (image_sha256, image, label, predicted, model_version, created) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (image_sha256, label) DO NOTHING RETURNING id",
                (key, pixels, label, predicted, model_version, now()),
            )
            if rows:
                return str(rows[0][0]), True
            rows = run("SELECT id FROM corrections WHERE image_sha256 = ? AND label = ?", (key, label))
            return str(rows[0][0]), False

    def counts(self) -> dict:
        """{"pending": n, "accepted": n, "rejected": n, "by_label": {"0": n, ...}}; by_label counts every status."""
        counts = {status: 0 for status in STATUSES}
        by_label = {str(label): 0 for label in LABELS}
        with self._transaction(write=False) as run:
            for status, label, count in run("SELECT status, label, count(*) FROM corrections GROUP BY status, label"):
                counts[status] += count
                by_label[str(label)] += count
        return {**counts, "by_label": by_label}

    def list(self, status: str | None = None) -> list[Correction]:
        """In the order they came."""
        with self._transaction(write=False) as run:
            if status is None:
                rows = run(f"SELECT {COLUMNS} FROM corrections ORDER BY id")
            else:
                rows = run(f"SELECT {COLUMNS} FROM corrections WHERE status = ? ORDER BY id", (checked_status(status),))
        return [_correction(row) for row in rows]

    def get(self, id: str) -> Correction:
        numbers, _ = _numbers([id])
        if not numbers:
            raise KeyError(str(id))
        (number,) = numbers
        with self._transaction(write=False) as run:
            rows = run(f"SELECT {COLUMNS} FROM corrections WHERE id = ?", (number,))
        if not rows:
            raise KeyError(str(id))
        return _correction(rows[0])

    def set_status(self, ids: Iterable[str], status: str) -> int:
        """How many changed status; an unknown id raises KeyError (naming them all) and changes nothing."""
        checked_status(status)
        numbers, malformed = _numbers(ids)
        wanted = list(numbers)
        changed = 0
        with self._transaction(write=True) as run:
            found = set()
            for chunk in _chunks(wanted):
                found.update(
                    row[0]
                    for row in run(f"SELECT id FROM corrections WHERE id IN ({_placeholders(len(chunk))})", chunk)
                )
            missing = malformed + [numbers[number] for number in wanted if number not in found]
            if missing:
                raise KeyError(" ".join(missing))
            for chunk in _chunks(wanted):
                changed += len(
                    run(
                        f"UPDATE corrections SET status = ? WHERE id IN ({_placeholders(len(chunk))}) AND status <> ? "
                        "RETURNING id",
                        (status, *chunk, status),
                    )
                )
        return changed

    def accepted(self) -> list[Correction]:
        """The accepted ones by image hash, then label: the same set gives the same order, however it came."""
        with self._transaction(write=False) as run:
            rows = run(f"SELECT {COLUMNS} FROM corrections WHERE status = 'accepted' ORDER BY image_sha256, label")
        return [_correction(row) for row in rows]

    def backup(self, path: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def _correction(row: tuple) -> Correction:
    id, image, label, predicted, model_version, status, created = row
    pixels = np.frombuffer(bytes(image), dtype=np.uint8).reshape(SHAPE)
    pixels.flags.writeable = False
    return Correction(str(id), pixels, label, predicted, model_version, status, created)
