"""cnn-mnist with its forward pass run by LiteRT's interpreter (`bench/serve.py --litert`).

The fastest runtime found for this model on CPU, measured so the README's case for issue 9 can be
re-run: everything else (parsing, validation, batching, the canary check, metrics) runs as in
production. The `.keras` model is exported as a SavedModel and converted to a flatbuffer at load,
then run by `ai_edge_litert`'s interpreter (XNNPACK, two threads). Its answers are real, so the
canary check and the bench's accuracy check apply. Needs `pip install ai-edge-litert` (not a
dependency of cnn-mnist).

    python bench/litert_server.py --model MODEL [cnn-mnist flags]
"""

import runpy
import sys
import tempfile
import threading

sys.path.insert(0, __file__.rsplit("/bench/", 1)[0])


def litert_forward(model):
    """The model as a LiteRT interpreter behind a lock: one NumPy batch in, probabilities out."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    with tempfile.TemporaryDirectory() as saved_model:
        model.export(saved_model, format="tf_saved_model", verbose=False)
        flatbuffer = tf.lite.TFLiteConverter.from_saved_model(saved_model).convert()
    interpreter = Interpreter(model_content=flatbuffer, num_threads=2)
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    lock, allocated = threading.Lock(), None  # an interpreter runs one batch at a time

    def forward(batch):
        nonlocal allocated
        with lock:
            if batch.shape != allocated:
                interpreter.resize_tensor_input(input_index, batch.shape)
                interpreter.allocate_tensors()
                allocated = batch.shape
            interpreter.set_tensor(input_index, batch)
            interpreter.invoke()
            return interpreter.get_tensor(output_index)

    return forward


def require_litert(prog: str) -> None:
    """One line and exit 2 when LiteRT is not installed, before any slow import."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError as error:
        print(f"{prog}: needs LiteRT: pip install ai-edge-litert ({error})", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    require_litert("litert_server")
    # after the check: this imports the backend, which takes seconds
    from cnn_mnist.serving import inference

    inference._compile = litert_forward
    sys.argv[0] = "cnn-mnist"
    runpy.run_module("cnn_mnist.serving.cli", run_name="__main__")
