"""A sitecustomize that makes the backend's import misbehave on purpose, whatever this CPU does.

Real start-up chatter (oneDNN, absl) appears on some CPUs only; this one always appears, written to
file descriptor 2 as C++ code writes it. It fires on the first import of a submodule of Keras or of a
backend library, which a real import does and `importlib.util.find_spec("keras")` does not.
"""

import os

CHATTER = "I0000 fake-backend start-up chatter on fd 2"

SITECUSTOMIZE = f'''
import os, sys

class BackendHook:
    fired = False

    def find_spec(self, name, path=None, target=None):
        mode = os.environ.get("CNN_MNIST_TEST_BACKEND_HOOK")
        if self.fired or "." not in name or name.split(".")[0] not in ("keras", "tensorflow", "jax", "torch"):
            return None
        BackendHook.fired = True
        if mode == "forbid":
            os._exit(97)
        os.write(2, b"{CHATTER}\\n")
        sys.stderr.write("a Python warning from the backend\\n")
        if mode == "broken":
            raise ImportError("libfake.so: cannot open shared object file")
        return None

sys.meta_path.insert(0, BackendHook())
'''


def hook_env(tmp_path, mode: str) -> dict:
    """Environment for a subprocess whose backend import does `mode`: chatter, broken, or forbid (exit 97)."""
    directory = tmp_path / "backend-hook"
    directory.mkdir(exist_ok=True)
    (directory / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = os.pathsep.join(filter(None, [str(directory), os.environ.get("PYTHONPATH")]))
    # no __pycache__ beside the hook: tests compare the files under tmp_path before and after a run
    return {"PYTHONPATH": path, "CNN_MNIST_TEST_BACKEND_HOOK": mode, "PYTHONDONTWRITEBYTECODE": "1"}
