"""module.nix under nixpkgs' real lib.evalModules, and package.nix / model.nix / nix/packages.nix
against fake builders; these need NIXPKGS_LIB (a nixpkgs checkout or its lib/) and skip without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from nixeval import HARNESS, NIXPKGS_LIB, needs_lib, eval_json, eval_error, nix_literal


# --- module.nix under lib.evalModules ------------------------------------------


def eval_module(settings: dict | None = None, extra: str | None = None):
    args = ["--argstr", "nixpkgsLib", NIXPKGS_LIB]
    if settings is not None:
        args += ["--arg", "settings", nix_literal(settings)]
    if extra is not None:
        args += ["--arg", "extraConfig", extra]
    return eval_json(HARNESS / "module-eval.nix", *args)


@needs_lib
def test_module_option_defaults_and_types():
    opts = eval_module()["options"]
    assert opts["enable"]["default"] is False and opts["enable"]["type"] == "bool"
    assert opts["host"]["default"] == "127.0.0.1" and opts["host"]["type"] == "str"
    assert opts["port"]["default"] == 8080
    assert opts["port"]["type"] == "unsignedInt16"  # types.port
    assert opts["backend"]["default"] == "tensorflow"
    assert opts["backend"]["type"] == "enum"
    assert set(opts["backend"]["values"]) >= {"tensorflow", "jax", "torch"}
    assert opts["model"]["type"] == "path"
    assert opts["model"]["default"].endswith("-cnn-mnist-model")  # pkgs.cnn-mnist-model
    assert opts["package"]["type"] == "package"
    assert opts["threads"]["type"] == "positiveInt"
    assert opts["openFirewall"]["default"] is False
    assert opts["nginxEnable"]["default"] is False
    assert opts["nginxVirtualHost"]["default"] == "testhost"  # networking.fqdnOrHostName
    assert opts["environment"]["default"] == {}
    for name, opt in opts.items():
        assert opt["hasDescription"], f"{name} has no description"
        assert opt["hasExample"], f"{name} has no example"


@needs_lib
def test_module_unit_exec_start_and_environment():
    r = eval_module({"backend": "jax", "port": 9000, "host": "0.0.0.0", "threads": 2,
                     "environment": {"OMP_NUM_THREADS": "2"}})
    svc = r["service"]
    exec_start = svc["serviceConfig"]["ExecStart"].split()
    # lib.getExe of the package overridden with the backend
    assert exec_start[0].endswith("-cnn-mnist-jax/bin/cnn-mnist")
    assert exec_start[1:] == ["--host", "0.0.0.0", "--port", "9000", "--backend", "jax",
                              "--threads", "2"]
    assert svc["environment"]["MODEL"] == "/etc/cnn-mnist/model"
    assert svc["environment"]["OMP_NUM_THREADS"] == "2"
    for var in ["HOME", "KERAS_HOME", "MPLCONFIGDIR", "XDG_CACHE_HOME"]:
        assert svc["environment"][var].startswith("/var/cache/cnn-mnist")
    assert "multi-user.target" in svc["wantedBy"]
    assert r["failedAssertions"] == []


@needs_lib
def test_module_unit_hardening():
    sc = eval_module()["service"]["serviceConfig"]
    assert sc["DynamicUser"] is True
    assert sc["ProtectSystem"] == "strict"
    for key in ["PrivateTmp", "NoNewPrivileges", "ProtectHome", "PrivateDevices",
                "ProtectKernelTunables", "ProtectKernelModules", "ProtectControlGroups",
                "RestrictNamespaces", "RestrictSUIDSGID", "LockPersonality"]:
        assert sc[key] is True, key
    assert sorted(sc["RestrictAddressFamilies"]) == ["AF_INET", "AF_INET6", "AF_UNIX"]
    assert "@system-service" in " ".join(sc["SystemCallFilter"])
    assert any(f.startswith("~@privileged") for f in sc["SystemCallFilter"])
    assert sc["SystemCallArchitectures"] == "native"
    assert sc["CapabilityBoundingSet"] == [""]
    # every supported backend JITs CPU code, so W^X stays off (see module.nix)
    assert sc["MemoryDenyWriteExecute"] is False


@needs_lib
def test_module_model_change_reloads_instead_of_restarting():
    a = eval_module({"model": "/srv/models/a.keras"})
    b = eval_module({"model": "/srv/models/b.keras"})
    sa, sb = a["service"], b["service"]
    # a stable link in /etc points at the model...
    assert a["etc"]["cnn-mnist/model"]["source"] == "/srv/models/a.keras"
    assert b["etc"]["cnn-mnist/model"]["source"] == "/srv/models/b.keras"
    # ...so the unit itself is unchanged but for its reload trigger
    assert sa["reloadTriggers"] == ["/srv/models/a.keras"]
    assert sb["reloadTriggers"] == ["/srv/models/b.keras"]
    assert sa["serviceConfig"] == sb["serviceConfig"]
    assert sa["environment"] == sb["environment"]
    assert "restartTriggers" not in sa
    reload = sa["serviceConfig"]["ExecReload"].split()
    assert reload[0].endswith("/bin/kill") and reload[1:] == ["-HUP", "$MAINPID"]


@needs_lib
def test_module_disabled_sets_nothing():
    r = eval_module({"enable": False})
    assert r["service"] is None
    assert r["etc"] == {}
    assert r["nginx"] == {} and r["firewall"] == {}


@needs_lib
def test_module_nginx_virtual_host_and_firewall():
    r = eval_module({"nginx": {"enable": True, "virtualHost": "mnist.example.org"},
                     "port": 8081, "openFirewall": True})
    assert r["nginx"]["enable"] is True
    location = r["nginx"]["virtualHosts"]["mnist.example.org"]["locations"]["/"]
    assert location["proxyPass"] == "http://127.0.0.1:8081"
    assert location["recommendedProxySettings"] is True
    assert r["firewall"]["allowedTCPPorts"] == [80]

    tls = eval_module(
        {"nginx": {"enable": True, "virtualHost": "mnist.example.org"}, "openFirewall": True},
        extra='{ services.nginx.virtualHosts."mnist.example.org".forceSSL = true; }',
    )
    assert tls["firewall"]["allowedTCPPorts"] == [80, 443]

    # listening on all addresses: nginx proxies to loopback
    r = eval_module({"nginx": {"enable": True}, "host": "0.0.0.0"})
    assert r["nginx"]["virtualHosts"]["testhost"]["locations"]["/"]["proxyPass"] == \
        "http://127.0.0.1:8080"
    assert r["firewall"] == {}  # openFirewall is off


@needs_lib
def test_module_open_firewall_without_nginx():
    r = eval_module({"openFirewall": True, "port": 8123})
    assert r["firewall"]["allowedTCPPorts"] == [8123]
    assert r["nginx"] == {}


@needs_lib
def test_module_theano_is_rejected_with_an_explanation():
    r = eval_module({"backend": "theano"})
    assert len(r["failedAssertions"]) == 1
    message = r["failedAssertions"][0]
    assert "theano" in message and "Keras 3" in message
    assert "tensorflow, jax, torch" in message


@needs_lib
@pytest.mark.parametrize(
    "settings, message",
    [({"port": 70000}, "16 bit unsigned integer"), ({"backend": "mxnet"}, "one of"),
     ({"threads": 0}, "positive integer")],
)
def test_module_rejects_ill_typed_values(settings: dict, message: str):
    stderr = eval_error(HARNESS / "module-eval.nix", "--argstr", "nixpkgsLib", NIXPKGS_LIB,
                        "--arg", "settings", nix_literal(settings))
    assert message in stderr


# --- package.nix, model.nix, nix/packages.nix with fake builders ---------------


@needs_lib
def test_package_dependencies_follow_backend():
    r = eval_json(HARNESS / "package-eval.nix", "--argstr", "nixpkgsLib", NIXPKGS_LIB,
                  "-A", "report")
    common = {"keras", "numpy", "h5py", "pillow", "matplotlib", "flask", "waitress",
              "prometheus-client"}
    expected = {"tensorflow": {"tensorflow-bin"}, "jax": {"jax", "jaxlib"}, "torch": {"torch"}}
    for backend, extra in expected.items():
        p = r["packages"][backend]
        assert set(p["dependencies"]) == common | extra, backend
        assert p["makeWrapperArgs"] == ["--set-default", "KERAS_BACKEND", backend]
        assert p["backend"] == backend
    d = r["defaultPackage"]
    assert d["backend"] == "tensorflow"
    assert (d["pname"], d["version"]) == ("cnn-mnist", "0.1.0")  # from pyproject.toml
    assert d["pyproject"] is True and d["mainProgram"] == "cnn-mnist"
    assert set(d["platforms"]) == {"x86_64-linux", "aarch64-linux"}
    assert r["theanoPackageEvaluates"] is False


@needs_lib
def test_model_derivation_runs_the_trainer():
    r = eval_json(HARNESS / "package-eval.nix", "--argstr", "nixpkgsLib", NIXPKGS_LIB,
                  "-A", "report")
    m = r["defaultModel"]
    assert m["dataset"] == "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
    assert m["datasetHash"] == "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
    assert m["nativeBuildInputs"] == ["cnn-mnist-tensorflow"]
    flags = " ".join(m["buildPhase"].replace("\\\n", " ").split())
    assert ("cnn-mnist-train --dataset /nix/store/0000-mnist.npz --epochs 10 --batch-size 128 "
            "--learning-rate 0.001 --seed 0 --backend tensorflow --output \"$out\"") in flags
    for var in ["HOME", "XDG_CACHE_HOME", "KERAS_HOME", "MPLCONFIGDIR"]:
        assert f"{var}=$TMPDIR" in flags, var
    c = r["customModel"]
    assert (c["pname"], c["version"]) == ("cnn-mnist-model-jax", "e5-s7")
    assert c["nativeBuildInputs"] == ["cnn-mnist-jax"]
    flags = " ".join(c["buildPhase"].replace("\\\n", " ").split())
    assert "--dataset /data/mnist-small.npz --epochs 5 --batch-size 64" in flags
    assert "--seed 7 --backend jax" in flags
    assert r["theanoModelEvaluates"] is False and r["zeroEpochsEvaluates"] is False


@needs_lib
@pytest.mark.parametrize(
    "attr, message",
    [("theanoModel", 'backend "theano" is not supported: Keras 3 removed the Theano backend'),
     ("theanoPackage", 'backend "theano" is not supported: Keras 3 removed the Theano backend'),
     ("unknownBackendModel", 'unknown backend "mxnet"')],
)
def test_unsupported_backends_fail_at_evaluation(attr: str, message: str):
    stderr = eval_error(HARNESS / "package-eval.nix", "--argstr", "nixpkgsLib", NIXPKGS_LIB,
                        "-A", attr)
    assert message in stderr


@needs_lib
def test_best_model_reads_accuracy_files(tmp_path: Path):
    for seed, acc in enumerate(["0.971\n", "0.9853\n", "0.9853\n", "0.962\n"]):
        (tmp_path / f"seed-{seed}").mkdir()
        (tmp_path / f"seed-{seed}" / "accuracy.txt").write_text(acc)
    r = eval_json(HARNESS / "package-eval.nix", "--argstr", "nixpkgsLib", NIXPKGS_LIB,
                  "--argstr", "models", str(tmp_path), "-A", "report")
    assert r["bestModelSeed"] == 1  # tie between seeds 1 and 2: the lower seed
    assert r["bestOfTwo"] == 2
    (tmp_path / "seed-3" / "accuracy.txt").write_text("0.99\n")
    r = eval_json(HARNESS / "package-eval.nix", "--argstr", "nixpkgsLib", NIXPKGS_LIB,
                  "--argstr", "models", str(tmp_path), "-A", "report")
    assert r["bestModelSeed"] == 3
