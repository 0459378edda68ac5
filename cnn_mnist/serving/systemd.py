"""systemd's readiness protocol (sd_notify(3)), spoken directly: one datagram to $NOTIFY_SOCKET.

With `Type=notify-reload` (module.nix) systemd, and nginx behind it, count the service as up only after
READY=1, which the server sends once the model is loaded, canary-checked and warmed and the port is open;
a reload is RELOADING=1 (with MONOTONIC_USEC, which notify-reload requires) … READY=1; STOPPING=1 starts
the drain. Outside systemd (no NOTIFY_SOCKET) every call does nothing.
"""

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


def notify(*assignments: str) -> bool:
    """Send `assignments` (such as "READY=1") to the service manager; False when there is none."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # the abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(assignments).encode())
    except OSError as error:
        # systemd would then time the start or reload out: say why here, where it can be read
        log.error("cannot notify systemd at %s: %s", os.environ["NOTIFY_SOCKET"], error)
        return False
    return True


def ready(status: str) -> bool:
    return notify("READY=1", f"STATUS={status}")


def reloading() -> bool:
    return notify(
        "RELOADING=1",
        f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}",
        "STATUS=reloading the model",
    )


def stopping() -> bool:
    return notify("STOPPING=1", "STATUS=draining")
