"""`cnn-mnist`: serve the model with waitress (the app, the JSON API and the drawing page).

Settings come from flags, else the environment (MODEL, HOST, PORT, KERAS_BACKEND or BACKEND, THREADS, and
the LIMITS' keys in upper case, such as MAX_IN_FLIGHT), else defaults. SIGHUP reloads the model without
dropping a request; SIGTERM drains and exits 0.
"""

import argparse
import logging
import os
import resource
import signal
import sys
import threading

from ..core.backends import BACKENDS, DEFAULT_BACKEND
from ..core.cli import ArgumentParser, add_verbose_option, fail, fraction, import_keras, positive_float, positive_int
from ..core.errors import UsageError
from ..corrections.store import open_store
from . import NAME, systemd
from .canary import load_canary
from .client_address import trusted_network
from .defaults import SERVER as DEFAULTS
from .heap import freeze_survivors

PROG = NAME
# Descriptors besides the connections: listener, waitress' trigger, logs, model files (8 at rest, measured).
FD_RESERVE = 64
# What one request may cost, and how many are answered at once: (flag, key in server-defaults.json, help).
LIMITS = [
    ("--max-images-per-request", "max_images_per_request", "images in one request, in any form"),
    ("--max-image-pixels", "max_image_pixels", "pixels of one uploaded image, read from its header"),
    ("--max-request-pixels", "max_request_pixels", "pixels of one request's uploaded images together"),
    ("--max-in-flight", "max_in_flight", "prediction requests answered at once; more get a 503 at once"),
]


def build_parser() -> ArgumentParser:
    """The parser, its defaults read from the environment now; parse_args checks what it cannot.

    docs/generate_reference.py renders it into docs/reference/cli.md.
    """
    env = os.environ
    parser = ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        default=env.get("MODEL", "out/model.keras"),
        help="a .keras/.h5 file, a trainer output directory, or a directory of versions 1/, 2/, …",
    )
    parser.add_argument("--host", default=env.get("HOST", "127.0.0.1"))
    # String defaults from the environment go through each option's `type`, so PORT=abc is a usage error.
    parser.add_argument("--port", type=int, default=env.get("PORT", "8080"))
    parser.add_argument(
        "--backend",
        default=env.get("KERAS_BACKEND") or env.get("BACKEND") or DEFAULT_BACKEND,
        help=f"one of {', '.join(BACKENDS)}",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=env.get("THREADS", str(DEFAULTS["threads"])),
        help=f"waitress worker threads (default {DEFAULTS['threads']})",
    )
    parser.add_argument("--max-batch-size", type=positive_int, default=DEFAULTS["max_batch_size"])
    parser.add_argument(
        "--max-batch-delay-ms",
        type=float,
        default=DEFAULTS["max_batch_delay_ms"],
        help=f"how long a request may wait to share a forward pass (default {DEFAULTS['max_batch_delay_ms']})",
    )
    parser.add_argument("--max-body-bytes", type=positive_int, default=DEFAULTS["max_body_bytes"])
    for flag, key, what in LIMITS:
        parser.add_argument(
            flag,
            type=positive_int,
            default=env.get(key.upper(), str(DEFAULTS[key])),
            help=f"{what} (${key.upper()}; default {DEFAULTS[key]})",
        )
    parser.add_argument(
        "--drain-seconds",
        type=positive_float,
        default=DEFAULTS["drain_seconds"],
        help="on SIGTERM, how long to let requests in flight finish",
    )
    parser.add_argument(
        "--connection-limit",
        type=positive_int,
        default=DEFAULTS["connection_limit"],
        help=f"open connections at most; beyond it waitress stops accepting (default {DEFAULTS['connection_limit']})",
    )
    parser.add_argument(
        "--channel-timeout",
        type=positive_int,
        default=DEFAULTS["channel_timeout"],
        help="seconds a connection may sit idle or half-sent before it is closed "
        f"(default {DEFAULTS['channel_timeout']})",
    )
    parser.add_argument(
        "--canary",
        help="the canary set every model is scored on before it serves: a Keras "
        "mnist.npz (x_test, y_test) or an IDX directory (default: 1,000 MNIST test digits shipped)",
    )
    parser.add_argument(
        "--min-accuracy",
        type=fraction,
        default=DEFAULTS["min_accuracy"],
        help=f"canary accuracy below which a model never serves (default {DEFAULTS['min_accuracy']})",
    )
    parser.add_argument(
        "--max-regression",
        type=fraction,
        default=DEFAULTS["max_regression"],
        help="on SIGHUP, refuse a model scoring this much below the one serving; 1 turns it off "
        f"(default {DEFAULTS['max_regression']})",
    )
    parser.add_argument(
        "--corrections",
        metavar="STORE",
        default=env.get("CORRECTIONS"),
        help="keep the corrections people send (POST /v1/corrections, the page's buttons) in STORE, a SQLite "
        "file or a postgresql:// URL, for review; off (a 404, no buttons) when absent",
    )
    parser.add_argument(
        "--corrections-per-minute",
        type=non_negative_int,
        default=env.get("CORRECTIONS_PER_MINUTE", str(DEFAULTS["corrections_per_minute"])),
        help="corrections one client may send a minute, in a burst or spread out; past it a 429 with "
        f"Retry-After; 0 turns the limit off (default {DEFAULTS['corrections_per_minute']})",
    )
    parser.add_argument(
        "--trusted-proxy",
        metavar="ADDRESS",
        action=Repeated,
        default=env.get("TRUSTED_PROXY"),
        help="a proxy (address or network) whose X-Forwarded-For names the client for the rate limit; "
        "repeatable; the flags replace $TRUSTED_PROXY (comma-separated)",
    )
    add_verbose_option(parser)
    return parser


def parse_args(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.canary = load_canary(args.canary)  # numpy only: a bad file fails before the backend's slow import
    except UsageError as error:
        parser.error(str(error))
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be 0-65535, not {args.port}")
    if not 0 <= args.max_batch_delay_ms <= 1000:
        parser.error("--max-batch-delay-ms must be between 0 and 1000")
    if not os.path.exists(args.model):  # the rest of the model checks need the backend, and its slow import
        parser.error(f"model not found: {args.model}")
    if not isinstance(args.trusted_proxy, list):  # no flag: the environment's comma-separated list, or none
        args.trusted_proxy = [word for word in (args.trusted_proxy or "").split(",") if word.strip()]
    try:
        args.trusted_proxy = [trusted_network(text) for text in args.trusted_proxy]
    except ValueError as error:
        parser.error(f"--trusted-proxy: {error}")
    if args.corrections is not None:
        try:  # last, as it creates the store: a bad URL, a database that is down, before the model loads
            args.corrections = open_store(args.corrections)
        except UsageError as error:
            parser.error(f"--corrections: {error}")
    return args


class Repeated(argparse.Action):
    """A repeatable flag whose values replace its default (a string from the environment) instead of adding to it."""

    def __call__(self, parser, namespace, value, option_string=None):
        given = getattr(namespace, self.dest)
        setattr(namespace, self.dest, [*(given if isinstance(given, list) else []), value])


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def main(argv=None) -> int:
    # SIGHUP's default action ends the process: until the model is loaded (seconds), one is only noted,
    # and the reload runs once the server is up (issue 15 §3: a SIGHUP 0.3 s after start had killed it).
    early_reload = threading.Event()
    signal.signal(signal.SIGHUP, lambda *_: early_reload.set())
    args = parse_args(argv)
    ensure_file_descriptors(args.connection_limit)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    import_keras(args.backend, PROG, args.verbose)

    from .app import create_app
    from .inference import ModelCheckError
    from .waitress_server import create_server, drain, export_queue, serve_until

    try:
        app = create_app(
            {
                "MODEL": args.model,
                "MAX_BATCH_SIZE": args.max_batch_size,
                "MAX_BATCH_DELAY_MS": args.max_batch_delay_ms,
                "MAX_BODY_BYTES": args.max_body_bytes,
                **{key.upper(): getattr(args, key) for _, key, _ in LIMITS},
                "CANARY": args.canary,
                "MIN_ACCURACY": args.min_accuracy,
                "MAX_REGRESSION": args.max_regression,
                "CORRECTIONS": args.corrections,
                "CORRECTIONS_PER_MINUTE": args.corrections_per_minute,
                "TRUSTED_PROXIES": args.trusted_proxy,
            }
        )
        # waitress' own body limit stops abuse early; the app's (smaller) one answers with a JSON 413
        server = create_server(
            app,
            host=args.host,
            port=args.port,
            threads=args.threads,
            connection_limit=args.connection_limit,
            channel_timeout=args.channel_timeout,
            max_request_body_size=2 * args.max_body_bytes,
            ident=PROG,
        )
    except ModelCheckError as error:
        fail(PROG, str(error))
    except OSError as error:
        fail(PROG, f"cannot listen on {args.host}:{args.port}: {error.strerror or error}")

    state = app.extensions["cnn_mnist"]
    export_queue(server, state.metrics)
    store = state.store
    stopping = threading.Event()
    signal.signal(signal.SIGHUP, lambda *_: threading.Thread(target=reload, args=(store,), daemon=True).start())
    # The handlers only set a flag: an exception raised inside waitress' loop could be swallowed by it.
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    info = store.predictor.info
    host = f"[{server.effective_host}]" if ":" in str(server.effective_host) else server.effective_host
    freeze_survivors()  # before traffic: no full garbage collection over the backend and the model (heap.py)
    # loaded, canary-checked and warmed (create_app), and the port open (create_server): systemd may send traffic
    systemd.ready(serving_status(store))
    print(
        f"{PROG}: serving model {info.name} version {info.version} ({args.backend}) "
        f"at http://{host}:{server.effective_port}/",
        flush=True,
    )
    if early_reload.is_set():
        threading.Thread(target=reload, args=(store,), daemon=True).start()
    serve_until(server, stopping)
    state.draining.set()
    systemd.stopping()
    drain(server, args.drain_seconds)
    if args.corrections is not None:
        args.corrections.close()
    return 0


def reload(store) -> None:
    """A SIGHUP: RELOADING=1 … READY=1 around the reload (Type=notify-reload), whatever it decides."""
    systemd.reloading()
    store.reload()
    systemd.ready(serving_status(store))


def serving_status(store) -> str:
    versions = ", ".join(sorted(store.serving.versions, key=int))
    refused = f"; refused: {store.last_error}" if store.last_error else ""
    return f"serving version {store.predictor.info.version} (versions {versions}){refused}"


def ensure_file_descriptors(connection_limit: int) -> None:
    """Raise the soft descriptor limit to fit --connection-limit (systemd's is 1024).

    Out of descriptors, waitress does not stop accepting: it spins on accept(), logging a traceback each
    time (35 MB of log in 4 s, measured) and answering no one. So the limit must fit, or we refuse to start.
    """
    needed = connection_limit + FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        fail(
            PROG,
            f"--connection-limit {connection_limit} needs {needed} file descriptors, but at most {hard} "
            "may be opened (ulimit -n; LimitNOFILE= under systemd)",
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


if __name__ == "__main__":
    sys.exit(main())
