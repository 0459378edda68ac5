"""What both CLIs share: the backend imported with its start-up chatter kept off stderr unless --verbose.

The trainer's side is in test_train.py; here are the mechanism itself and the server's side.
"""

import importlib
import os
import subprocess
import sys

import pytest
from backend_hook import CHATTER, hook_env
from conftest import ROOT, free_port, start_server

from cnn_mnist.core.backends import BackendLoadError, quietly


def import_quietly(name):
    return quietly(lambda: importlib.import_module(name))


@pytest.fixture
def module_dir(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_import_quietly_keeps_chatter_off_fd_2_and_restores_it(module_dir, capfd):
    # (pytest's capfd points sys.stderr elsewhere; the CLI tests check what goes through sys.stderr)
    chatter = "import os\nos.write(2, b'I0000 port.cc:153] chatter\\n')\nVALUE = 42\n"
    (module_dir / "chatty_backend.py").write_text(chatter)
    module = import_quietly("chatty_backend")
    os.write(2, b"after the import\n")
    assert module.VALUE == 42
    assert capfd.readouterr().err == "after the import\n"


def test_a_failed_import_keeps_what_it_printed(module_dir, capfd):
    (module_dir / "broken_backend.py").write_text(
        "import os\nos.write(2, b'libfoo.so: cannot open shared object file\\n')\nraise ImportError('no libfoo')\n"
    )
    with pytest.raises(BackendLoadError) as caught:
        import_quietly("broken_backend")
    assert str(caught.value) == "ImportError: no libfoo"
    assert caught.value.output == "libfoo.so: cannot open shared object file\n"
    assert capfd.readouterr().err == ""


def test_a_crash_during_the_import_still_reaches_stderr(module_dir):
    (module_dir / "crashing_backend.py").write_text("import ctypes\nctypes.string_at(0)\n")
    code = (
        "import importlib, cnn_mnist.core.backends as b; b.quietly(lambda: importlib.import_module('crashing_backend'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(module_dir), str(ROOT)])},
    )
    assert result.returncode == -11
    assert "Fatal Python error: Segmentation fault" in result.stderr and "crashing_backend" in result.stderr


# ---- the server ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_server_with_a_broken_backend_is_one_line_exit_2(trained_model, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "cnn_mnist.serving.cli", "--model", str(trained_model), "--port", str(free_port())],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={**os.environ, **hook_env(tmp_path, "broken")},
    )
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("cnn-mnist: error: the tensorflow backend failed to load (ImportError: libfake.so")
    assert f"it printed: {CHATTER} | a Python warning from the backend" in line


@pytest.mark.slow
@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
def test_server_keeps_backend_chatter_off_stderr_unless_verbose(trained_model, tmp_path, verbose):
    extra = ["--verbose"] if verbose else []
    process, _ = start_server(trained_model, *extra, env=hook_env(tmp_path, "chatter"))
    process.terminate()
    _, stderr = process.communicate(timeout=60)
    assert (CHATTER in stderr) == verbose, stderr
    assert ("a Python warning from the backend" in stderr) == verbose, stderr
