"""SIGINT and SIGTERM as one exception, raised only where the backend can take it.

Python raises KeyboardInterrupt at whatever bytecode the main thread is on. Inside a training step
that can be halfway through building a tf.data iterator or handing a buffer to XLA, and unwinding from
there has crashed the process (SIGSEGV, exit -11, no message; keras-team/keras#21019 shows the same
with JAX). So while the backend trains, a stop is only recorded, and `raise_pending` (called by a
Keras callback between batches) raises it; anywhere else it is raised at once.
"""

import contextlib
import signal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """A stop asked for by a signal; a BaseException, like KeyboardInterrupt, so no `except Exception` eats it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signal.Signals(signum)

    @property
    def exit_status(self) -> int:
        return 128 + self.signum  # as a shell reports a process killed by the signal


class StopSignals:
    def __init__(self):
        self.pending = None
        self.deferring = False

    def install(self) -> None:
        """Handle SIGINT and SIGTERM, except one that is ignored (SIGINT in a shell's `cmd &` stays ignored)."""
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                signal.signal(signum, self._on_signal)

    @contextlib.contextmanager
    def deferred(self):
        """Within this block a stop waits for `raise_pending`; one still pending at its end is raised there."""
        self.deferring = True
        try:
            yield self
        finally:
            self.deferring = False
        self.raise_pending()

    def raise_pending(self) -> None:
        if self.pending is not None:
            signum, self.pending = self.pending, None
            raise Interrupted(signum)

    def _on_signal(self, signum, frame):
        if self.deferring:
            self.pending = self.pending or signum  # the first signal names the stop
        else:
            raise Interrupted(signum)
