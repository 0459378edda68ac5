"""SIGINT and SIGTERM stop training between batches, never inside the backend's step.

The whole trainer, interrupted by real signals, is tested in test_artifact.py.
"""

import os
import signal

import pytest
from conftest import DATASET

from cnn_mnist.core.data import load_dataset
from cnn_mnist.training.cli import subset
from cnn_mnist.training.interrupts import Interrupted, StopSignals


@pytest.fixture
def stops():
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    stops = StopSignals()
    stops.install()
    yield stops
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_outside_the_backend_a_signal_stops_at_once(stops, signum, status):
    with pytest.raises(Interrupted) as raised:
        os.kill(os.getpid(), signum)  # os.kill runs the handler of a signal to its own process before returning
    assert raised.value.signum == signum and raised.value.exit_status == status


def test_inside_the_backend_a_signal_waits_for_a_safe_point(stops):
    with pytest.raises(Interrupted) as raised:
        with stops.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)
            reached = "past both signals"
            stops.raise_pending()
            reached = "past the safe point"
    assert reached == "past both signals"
    assert raised.value.signum == signal.SIGTERM  # the first signal names the stop
    assert stops.pending is None and not stops.deferring


def test_a_stop_pending_when_the_backend_is_done_is_raised_there(stops):
    with pytest.raises(Interrupted):
        with stops.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
    assert not stops.deferring


def test_an_ignored_sigint_stays_ignored():
    saved = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell starts `cmd &`
    try:
        StopSignals().install()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, saved)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_training_stops_at_the_next_batch_and_writes_nothing(stops, tmp_path):
    from cnn_mnist.training.trainer import TrainConfig, train

    dataset = subset(load_dataset(str(DATASET)), 1024, 256)
    lines = []

    def log(line):  # after epoch 1, inside fit: the signal waits, and fit stops at its next batch
        lines.append(line.split(":")[0])
        os.kill(os.getpid(), signal.SIGTERM)
        lines.append("the signal waited")

    output = tmp_path / "out"
    with pytest.raises(Interrupted):
        train(dataset, str(output), TrainConfig(epochs=3, batch_size=64), log=log, stops=stops)
    assert lines == ["epoch 1/3", "the signal waited"]
    assert os.listdir(tmp_path) == []
