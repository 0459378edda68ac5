"""heap.py: what lives as long as the process is frozen out of full collections, and a retired model's
reference cycles are still collected on reload (a frozen cycle would otherwise never be freed)."""

import gc
import weakref

from cnn_mnist.serving.heap import freeze_survivors, release_memory


class Model:
    """Stands in for a Keras model and its compiled function, which hold each other."""


def test_survivors_are_frozen_and_a_retired_cycle_is_collected_on_release():
    model = Model()
    model.itself = model  # the cycle
    gone = weakref.ref(model)
    try:
        freeze_survivors()
        assert gc.get_freeze_count() > 0
        del model
        gc.collect()
        assert gone() is not None  # frozen: a full collection no longer walks it
        release_memory()
        assert gone() is None  # the reload's release unfreezes, collects, freezes again
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
