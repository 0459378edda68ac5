"""waitress set up to hold up: slow clients time out promptly, and SIGTERM drains without dropping a request.

waitress' own `close()` resets every connection, and its keep-alive connections would be served for as
long as their clients keep sending. Draining here instead stops accepting, answers the requests in
flight with `Connection: close`, closes connections that sit idle, and returns as soon as none is left.
"""

import logging
import socket
import time

import waitress
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.task import WSGITask

from . import NAME

log = logging.getLogger(NAME)
POLL_SECONDS = 0.2  # how soon SIGTERM is noticed
CLEANUP_SECONDS = 1  # how often idle connections are looked for (waitress: 30, so a timeout ran up to 30 s late)
QUIET_SECONDS = 0.25  # while draining, a connection this long without a request in flight counts as idle


class _DrainingTask(WSGITask):
    def build_response_header(self):
        if self.channel.server.draining:  # as if the client had asked to close: waitress then says so and closes
            self.request.headers["CONNECTION"] = "close"
        return super().build_response_header()


class _DrainingChannel(HTTPChannel):
    task_class = _DrainingTask


def create_server(app, **settings):
    """`waitress.create_server` with poll() (select() fails past 1024 descriptors) and a drain-aware channel."""
    server = waitress.create_server(app, asyncore_use_poll=True, cleanup_interval=CLEANUP_SECONDS, **settings)
    server.channel_class = _DrainingChannel
    server.draining = False
    return server


def export_queue(server, metrics) -> None:
    """waitress' task queue in /metrics: its length now (`waiting`), and each of its warnings counted (`queued`).

    waitress logs "Task queue depth is N" on `waitress.queue` for every request that finds no idle
    thread: one line per request exactly when the server is busiest, so the warning is counted, not logged.
    """
    metrics.waiting.set_function(lambda: len(server.task_dispatcher.queue))
    queue_log = logging.getLogger("waitress.queue")
    queue_log.addHandler(_Counting(metrics.queued))
    queue_log.propagate = False


class _Counting(logging.Handler):
    def __init__(self, counter):
        super().__init__(logging.WARNING)
        self.counter = counter

    def emit(self, record):
        self.counter.inc()


def serve_until(server, stopping) -> None:
    """waitress' `server.run()`, but looking at `stopping` at least every POLL_SECONDS."""
    while not stopping.is_set():
        wasyncore.loop(timeout=POLL_SECONDS, map=server._map, use_poll=True, count=1)


def drain(server, seconds: float) -> None:
    """Stop accepting, finish the requests in flight (closing their connections), close idle ones; at most `seconds`."""
    log.info("draining: no new connections, finishing the requests in flight")
    _accept_backlog(server)  # closing the listener would reset connections the kernel has already accepted
    server.accepting = False
    server.del_channel()
    server.socket.close()
    # Only now: a client told to close before the listener was gone could reconnect into its backlog, and be reset.
    server.draining = True
    deadline = time.monotonic() + seconds
    while (channels := _channels(server)) and time.monotonic() < deadline:
        for channel in channels:
            if _idle(channel):
                channel.handle_close()
        wasyncore.loop(timeout=0.05, map=server._map, use_poll=True, count=1)
    if _channels(server):
        log.warning("drain deadline of %g s reached; closing %d connections", seconds, len(_channels(server)))
    server.task_dispatcher.shutdown(timeout=max(deadline - time.monotonic(), 0.1))
    wasyncore.close_all(server._map)
    log.info("drained; exiting")


def _accept_backlog(server):
    while True:
        try:
            pair = server.accept()
        except OSError:  # out of file descriptors: those left in the backlog cannot be served anyway
            return
        if pair is None:
            return
        connection, address = pair
        server.set_socket_options(connection)
        server.channel_class(server, connection, server.fix_addr(address), server.adj, map=server._map)


def _channels(server):
    return [channel for channel in server._map.values() if isinstance(channel, HTTPChannel)]


def _idle(channel) -> bool:
    """No request in flight, nothing to send, quiet for a moment, and no request bytes waiting unread."""
    if channel.requests or channel.total_outbufs_len or time.time() - channel.last_activity < QUIET_SECONDS:
        return False
    try:
        return not channel.socket.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)  # b"": the client left
    except BlockingIOError:
        return True  # nothing sent: safe to close
    except OSError:
        return True
