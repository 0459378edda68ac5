"""`cnn-mnist-corrections`: review the corrections people sent, and export the accepted ones for training.

    cnn-mnist-corrections --store STORE {stats | list | accept | reject | show | export | backup} ...

Nothing a person sends reaches a model by itself: every correction starts pending, and only the ones
accepted here are exported.  Usage errors are one line on stderr with exit status 2.
"""

import datetime
import json
import os
import re
import sys

from PIL import Image

from ..core.cli import ArgumentParser, fail, fraction
from ..core.errors import UsageError
from .export import split, write_export
from .store import STATUSES, StoreError, is_postgresql_url, open_store

PROG = "cnn-mnist-corrections"
RUNTIME_ERROR = 1  # the database failed under us: not the user's input
NIX_PATH_NAME = re.compile(r"[A-Za-z0-9._+-]+")  # a name Nix reads as a path literal after ./


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog=PROG, description="Review the corrections sent from the page; export accepted ones.")
    parser.add_argument(
        "--store",
        default=os.environ.get("CORRECTIONS"),
        help="a SQLite file or a postgresql:// URL, as the server's --corrections (default: $CORRECTIONS)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("stats", help='one JSON line: {"pending": n, "accepted": n, "rejected": n, "by_label": ...}')
    listing = commands.add_parser("list", help="one JSON line per correction, oldest first, without its pixels")
    listing.add_argument("--status", choices=STATUSES, help="only those with this status")
    accept = commands.add_parser("accept", help="let corrections into the next export")
    accept.add_argument("ids", nargs="*", metavar="ID")
    accept.add_argument("--all", action="store_true", help="every pending correction")
    reject = commands.add_parser("reject", help="keep corrections out of every export")
    reject.add_argument("ids", nargs="+", metavar="ID")
    show = commands.add_parser("show", help="write a correction's 28x28 image as a PNG")
    show.add_argument("id", metavar="ID")
    show.add_argument("--output", help="the PNG to write (default: ID.png)")
    export = commands.add_parser("export", help="write the accepted corrections as a Keras mnist.npz")
    export.add_argument("--output", help="the .npz to write (default: corrections-YYYY-MM-DD.npz, today in UTC)")
    export.add_argument("--holdout", type=fraction, help="a fraction kept out of training as x_test/y_test, by image")
    backup = commands.add_parser("backup", help="copy a SQLite store safely while servers write to it")
    backup.add_argument("file", metavar="FILE")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == "accept" and bool(args.ids) == args.all:
        fail(f"{PROG} accept", "give the IDs to accept, or --all, not both" if args.all else "give IDs or --all")
    try:
        store = _open(args.store)
        try:
            COMMANDS[args.command](store, args)
        finally:
            store.close()
    except UsageError as error:
        fail(PROG, str(error))
    except StoreError as error:
        fail(PROG, str(error), RUNTIME_ERROR)


def _open(url: str | None):
    if not url:
        raise UsageError("no store: give --store STORE (a SQLite file or a postgresql:// URL) or set CORRECTIONS")
    if not is_postgresql_url(url) and "://" not in url and not os.path.isfile(url):
        raise UsageError(f"no such store: {url}")  # rather than a new, empty one where a name was mistyped
    return open_store(url)


def _print(record: dict) -> None:
    print(json.dumps(record), flush=True)


def _stats(store, args):
    _print(store.counts())


def _list(store, args):
    for c in store.list(args.status):
        _print(
            {
                "id": c.id,
                "label": c.label,
                "predicted": c.predicted,
                "model_version": c.model_version,
                "status": c.status,
                "created": c.created,
            }
        )


def _set_status(store, ids, status):
    try:
        changed = store.set_status(ids, status)
    except KeyError as error:
        raise UsageError(f"no correction with id {error.args[0]}") from None
    _print({"status": status, "changed": changed})


def _accept(store, args):
    ids = [c.id for c in store.list("pending")] if args.all else args.ids
    _set_status(store, ids, "accepted")


def _reject(store, args):
    _set_status(store, args.ids, "rejected")


def _show(store, args):
    try:
        correction = store.get(args.id)
    except KeyError:
        raise UsageError(f"no correction with id {args.id}") from None
    output = args.output or f"{correction.id}.png"
    try:
        Image.fromarray(correction.image).save(output, format="PNG")
    except OSError as error:
        raise UsageError(f"cannot write {output}: {error}") from None
    print(output)


def _export(store, args):
    corrections = store.accepted()
    if not corrections:
        raise UsageError("no accepted corrections to export: accept some first (accept ID... or accept --all)")
    arrays = split(corrections, args.holdout)
    if len(arrays["y_train"]) == 0:
        raise UsageError(f"--holdout {args.holdout} holds out all {len(corrections)} accepted corrections")
    output = args.output or f"corrections-{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d}.npz"
    try:
        sha256 = write_export(output, arrays)
    except OSError as error:
        raise UsageError(f"cannot write {output}: {error.strerror}") from None
    name = os.path.basename(output)
    path = f"./{name}" if NIX_PATH_NAME.fullmatch(name) else f'(./. + "/{name}")'
    held = f", {len(arrays['y_test'])} held out as x_test" if "y_test" in arrays else ""
    print(f"{len(arrays['y_train'])} corrections for training{held}", file=sys.stderr)
    print(f"{sha256}  {output}")
    print(f"model.override {{ extraData = [ {path} ]; }}")


def _backup(store, args):
    store.backup(args.file)
    print(f"backed up {store.where} to {args.file}", file=sys.stderr)


COMMANDS = {
    "stats": _stats,
    "list": _list,
    "accept": _accept,
    "reject": _reject,
    "show": _show,
    "export": _export,
    "backup": _backup,
}

if __name__ == "__main__":
    main()
