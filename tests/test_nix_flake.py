"""The flake's outputs (tests/nix/flake-eval.nix: nixpkgs' real lib, a stub nixosSystem, fake
packages) and the NixOS modules they yield, evaluated with the real lib.evalModules
(tests/nix/module-eval.nix): the pin, nixosConfigurations.cnn-mnist as `nix flake check` and a deploy
see it, hydraJobs, nixosModules.default with read-only pkgs, and the NixOps network
(nixops-deployment.nix as nixopsConfigurations.default) for 1 and 3 replicas, at nixos-26.05."""

from __future__ import annotations

import ast
import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
from nixeval import HARNESS, ROOT, eval_json, nixpkgs_lib, run_nix


def flake_expr(root: Path | None = None) -> str:
    root_arg = f" root = {root};" if root is not None else ""
    return f"(import {HARNESS}/flake-eval.nix {{ nixpkgsLib = {json.dumps(nixpkgs_lib())};{root_arg} }})"


def flake_report(root: Path | None = None):
    args = ["--arg", "root", str(root)] if root is not None else []
    return eval_json(HARNESS / "flake-eval.nix", "--argstr", "nixpkgsLib", nixpkgs_lib(), *args, "-A", "report")


def eval_modules(modules: str, enable: str = "null", pkgs: str | None = None, nodes: str | None = None):
    """module-eval.nix on the given NixOS modules (a Nix expression for a list)."""
    args = ["--argstr", "nixpkgsLib", nixpkgs_lib(), "--arg", "modules", modules, "--arg", "enable", enable]
    if nodes is not None:
        args += ["--arg", "nodes", nodes]
    if pkgs is not None:
        args += ["--arg", "pkgs", pkgs]
    return eval_json(HARNESS / "module-eval.nix", *args)


# docs/nix-pin.md: the rev, narHash and lastModified of two public flake.lock files that lock
# github:NixOS/nixpkgs/nixos-26.05 (pr0d1r2/nix-hk @ 04dda36, vpsfreecz/vpsadmin-webui @ f89a33a)
PIN = {
    "rev": "5e2305d577ca00acbba631b05cb1094d172b29f3",
    "narHash": "sha256-/eLCD/X9kaWJqPR47+fDozEC87Hjmm3i8gJbYmDAD7g=",
    "lastModified": 1790450978,  # 2026-09-26 19:29:38 UTC
}


def test_flake_pins_a_supported_release():
    r = flake_report()
    assert r["inputUrl"] == "github:NixOS/nixpkgs/nixos-26.05"
    lock = json.loads((ROOT / "flake.lock").read_text())["nodes"]["nixpkgs"]
    assert lock["original"] == {"owner": "NixOS", "ref": "nixos-26.05", "repo": "nixpkgs", "type": "github"}
    assert lock["locked"] == {"owner": "NixOS", "repo": "nixpkgs", "type": "github", **PIN}
    # the evidence is written down, with the same rev and hash
    evidence = (ROOT / "docs" / "nix-pin.md").read_text()
    assert PIN["rev"] in evidence and PIN["narHash"] in evidence


def test_flake_outputs_and_checks():
    r = flake_report()
    assert {
        "nixosConfigurations",
        "nixopsConfigurations",
        "nixosModules",
        "packages",
        "checks",
        "formatter",
        "overlays",
        "hydraJobs",
    } <= set(r["outputNames"])
    # `nix flake check` trains, tests and gates a quick model, and runs both VM tests
    assert r["checks"] == ["model-quick", "nixos", "nixos-scale-out", "pytest"]
    # the flake's `import nixpkgs` reached the stand-in, which the NixOps network gets too
    assert r["networks"]["1"]["flakeNixpkgs"] == r["stubNixpkgs"]


# --- nixosConfigurations.cnn-mnist: `nix flake check` on a fresh clone, and a deploy ----------------


def host_modules(root: Path | None = None) -> str:
    """The host's NixOS modules, with the options the host sets beyond module.nix's declared."""
    expr = flake_expr(root)
    return f"({expr}.outputs.nixosConfigurations.cnn-mnist.nixosSystemArgs.modules ++ [ {expr}.hostStubs ])"


def test_nixos_configuration_is_a_complete_host():
    r = flake_report()
    assert r["host"] == {"system": "x86_64-linux", "modules": ["lambda", "host.nix", "no-hardware.nix"]}
    # nixosSystem's pkgs: nixpkgs without the overlay, so the flake's own package serves
    host = eval_modules(host_modules(), pkgs=f"{flake_expr()}.readOnlyPkgs")
    svc = host["service"]
    assert svc["serviceConfig"]["ExecStart"].split()[0].endswith("-cnn-mnist-flake/bin/cnn-mnist")
    assert host["nginx"]["enable"] is True
    vhost = host["nginx"]["virtualHosts"]["cnn-mnist"]
    assert vhost["locations"]["/"]["proxyPass"] == "http://127.0.0.1:8080"
    assert vhost["default"] is True
    assert host["firewall"]["allowedTCPPorts"] == [80]
    # without the machine's hardware-configuration.nix the host still evaluates (the placeholder)
    assert host["failedAssertions"] == []


def test_flake_check_evaluates_the_host_without_hardware_configuration():
    # `nix flake check` forces every nixosConfigurations.*.config.system.build.toplevel and checks
    # that it is a derivation; on a fresh clone that must not throw
    [(name, toplevel)] = flake_report()["toplevels"].items()
    assert name == "cnn-mnist"
    assert toplevel["isDerivation"] is True
    # ... and it says what it evaluated
    [warning] = toplevel["warnings"]
    assert "no hardware-configuration.nix" in warning and "placeholder" in warning


def run_check(check: dict) -> subprocess.CompletedProcess[str]:
    """A system.checks entry's build script, as its builder would run it."""
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", check["script"]],
        env={**os.environ, **check["env"]},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_deploying_without_hardware_configuration_fails_naming_it():
    # Every deploy builds the toplevel, and with it system.checks, before it copies or activates
    # anything: the placeholder's check fails, saying what to do.
    [check] = flake_report()["toplevels"]["cnn-mnist"]["passedChecks"]
    assert check["name"] == "cnn-mnist-needs-hardware-configuration"
    proc = run_check(check)
    assert proc.returncode == 1
    message = proc.stderr
    for needed in [
        "hardware-configuration.nix",
        "nixos-generate-config --show-hardware-config",
        "--generate-hardware-config",
        "boot loader",
        "git add",
        "lib.mkHost",
    ]:
        assert needed in message, needed
    # Nix prints the last 10 lines of a failed build's log: all of the message is among them
    assert len(message.splitlines()) <= 10
    assert message.splitlines()[0].startswith(
        "nixosConfigurations.cnn-mnist needs the machine's hardware-configuration.nix"
    )


HARDWARE = """{ fileSystems."/" = { device = "/dev/disk/by-label/nixos"; fsType = "ext4"; };
  boot.loader.grub.device = "/dev/sda"; }
"""


@pytest.fixture
def checkout_with_hardware(tmp_path: Path) -> Path:
    """The project with a hardware-configuration.nix beside a copy of flake.nix (the rest linked)."""
    root = tmp_path / "checkout"
    root.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in {"flake.nix", "hardware-configuration.nix", ".git"}:
            (root / entry.name).symlink_to(entry)
    # a copy, not a link: Nix resolves a linked file's relative paths from its target's directory
    (root / "flake.nix").write_text((ROOT / "flake.nix").read_text())
    (root / "hardware-configuration.nix").write_text(HARDWARE)
    return root


def test_host_with_hardware_configuration_builds_without_the_placeholder(checkout_with_hardware: Path):
    r = flake_report(checkout_with_hardware)
    assert r["host"]["modules"] == ["lambda", "host.nix", "hardware-configuration.nix"]
    toplevel = r["toplevels"]["cnn-mnist"]
    assert toplevel == {"isDerivation": True, "warnings": [], "passedChecks": []}
    host = eval_modules(host_modules(checkout_with_hardware), pkgs=f"{flake_expr()}.readOnlyPkgs")
    assert host["failedAssertions"] == []


def test_mkhost_takes_the_machines_hardware_module():
    hardware = HARDWARE.replace("\n", " ")
    proc = run_nix(
        "--eval",
        "--strict",
        "--json",
        "-E",
        f"let f = {flake_expr()}; in f.toplevelOf (f.outputs.lib.mkHost {{ hardware = {hardware}; }})",
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"isDerivation": True, "warnings": [], "passedChecks": []}


# --- hydraJobs ---------------------------------------------------------------------------


SYSTEMS = ["aarch64-linux", "x86_64-linux"]


def test_hydra_jobs_structure():
    r = flake_report()
    # `nix flake check` and Hydra: a set of sets, jobs at the leaves, <job>.<system>
    assert r["hydraJobsIsDerivation"] is False
    jobs = r["hydraJobs"]
    assert sorted(jobs) == ["cnn-mnist", "models", "tests"]
    assert sorted(jobs["cnn-mnist"]) == ["jax", "tensorflow", "torch"]
    assert sorted(jobs["models"]) == ["jax", "quick", "tensorflow", "torch"]
    assert sorted(jobs["tests"]) == ["nixos", "nixos-scale-out"]
    for group in ["cnn-mnist", "models"]:
        for name, per_system in jobs[group].items():
            assert sorted(per_system) == SYSTEMS, (group, name)
            for system, leaf in per_system.items():
                assert leaf["job"]["system"] == system
    # the VM tests need KVM: x86_64-linux only
    for name, per_system in jobs["tests"].items():
        assert list(per_system) == ["x86_64-linux"], name


def test_hydra_jobs_are_the_packages_per_backend_and_the_models():
    jobs = flake_report()["hydraJobs"]
    for backend in ["tensorflow", "jax", "torch"]:
        for system in SYSTEMS:
            package = jobs["cnn-mnist"][backend][system]["job"]
            assert package["name"] == f"cnn-mnist-{backend}" and package["backend"] == backend
            model = jobs["models"][backend][system]["job"]
            assert model["backend"] == backend
            assert model["overrides"] == {"backend": backend}  # the full dataset, 10 epochs, floor 0.98
            # the full-dataset models go to builders with big-parallel (model.nix's default)
            assert model["requiredSystemFeatures"] == ["big-parallel"]
    quick = jobs["models"]["quick"]["x86_64-linux"]["job"]
    assert {"dataset": "mnist-small.npz", "epochs": 1, "minAccuracy": 0.9}.items() <= quick["overrides"].items()
    tests = jobs["tests"]
    assert tests["nixos"]["x86_64-linux"]["job"]["name"] == "vm-test-run-cnn-mnist"
    assert tests["nixos-scale-out"]["x86_64-linux"]["job"]["name"] == "vm-test-run-cnn-mnist-scale-out"
    assert tests["nixos"]["x86_64-linux"]["job"]["requiredSystemFeatures"] == ["kvm", "nixos-test"]


# model.nix: "models.quick ... sets [ ]" (nix/quick-model.nix)
def test_hydra_quick_model_needs_no_big_builder():
    quick = flake_report()["hydraJobs"]["models"]["quick"]
    for system in SYSTEMS:
        assert quick[system]["job"]["requiredSystemFeatures"] == []


def test_nixos_module_works_with_read_only_pkgs():
    # No overlay (nixpkgs.pkgs / readOnlyPkgs / runNixOSTest): the stubs declare no nixpkgs.* option,
    # so a module that set nixpkgs.overlays would fail to evaluate here.
    r = eval_modules(
        f"[ {flake_expr()}.outputs.nixosModules.default ]", enable="true", pkgs=f"{flake_expr()}.readOnlyPkgs"
    )
    assert r["failedAssertions"] == []
    assert r["service"]["serviceConfig"]["ExecStart"].split()[0].endswith("-cnn-mnist-flake/bin/cnn-mnist")
    assert r["etc"]["cnn-mnist/model"]["source"].endswith("-cnn-mnist-model-flake")


def test_nixos_module_prefers_the_overlay_package():
    r = eval_modules(f"[ {flake_expr()}.outputs.nixosModules.default ]", enable="true")
    # module-eval's default pkgs carry the overlay's pkgs.cnn-mnist (a "default" backend: overridden)
    assert r["service"]["serviceConfig"]["ExecStart"].split()[0].endswith("-cnn-mnist-tensorflow/bin/cnn-mnist")
    assert r["etc"]["cnn-mnist/model"]["source"].endswith("-cnn-mnist-model")


# --- the NixOps network ------------------------------------------------------------


# what NixOps passes as `nodes`: each backend with the private address it was given
NODES = (
    "{ " + " ".join(f'backend-{i}.config.networking.privateIPv4 = "192.168.56.{100 + i}";' for i in range(1, 4)) + " }"
)


def machine(replicas: int, name: str):
    return eval_modules(f"[ ({flake_expr()}.machines {replicas}).{name} ]", nodes=NODES)


@pytest.mark.parametrize(
    "replicas, machines", [(1, ["cnn-mnist"]), (3, ["backend-1", "backend-2", "backend-3", "proxy"])]
)
def test_network_has_storage_and_the_flakes_nixpkgs(replicas: int, machines: list[str]):
    net = flake_report()["networks"][str(replicas)]
    assert net["machines"] == machines
    # NixOps 2 rejects a network without network.storage.*
    assert net["network"]["storage"] == {"legacy": {}}
    assert f"{replicas} replica" in net["network"]["description"]
    # the flake's network has the `nixpkgs` NixOps evaluates it with; the file has one for nixops.nix
    assert net["flakeNixpkgs"] == flake_report()["stubNixpkgs"]
    assert net["hasNetworkNixpkgs"] is True


def test_network_single_machine_serves_behind_its_own_nginx():
    m = machine(1, "cnn-mnist")
    assert m["failedAssertions"] == []
    assert m["service"]["serviceConfig"]["ExecStart"].split()[1:3] == ["--host", "127.0.0.1"]
    assert m["nginx"]["virtualHosts"]["cnn-mnist"]["locations"]["/"]["proxyPass"] == "http://127.0.0.1:8080"
    assert m["firewall"]["allowedTCPPorts"] == [80]


def test_network_backends_serve_the_proxy():
    for name in ["backend-1", "backend-2", "backend-3"]:
        m = machine(3, name)
        assert m["failedAssertions"] == []
        assert m["service"]["serviceConfig"]["ExecStart"].split()[1:5] == ["--host", "0.0.0.0", "--port", "8080"]
        assert m["nginx"] == {}
        assert m["firewall"]["allowedTCPPorts"] == [8080]


def test_network_proxy_spreads_over_the_backends_and_retries():
    m = machine(3, "proxy")
    assert m["service"] is None  # the proxy runs no model
    upstream = m["nginx"]["upstreams"]["cnn-mnist"]["servers"]
    assert sorted(upstream) == ["backend-1:8080", "backend-2:8080", "backend-3:8080"]
    for server in upstream.values():
        assert server == {"max_fails": 1, "fail_timeout": "10s"}
    # idle upstream connections close before the backends' --channel-timeout (30 s) closes them
    upstream_config = m["nginx"]["upstreams"]["cnn-mnist"]["extraConfig"]
    assert "keepalive 16;" in upstream_config and "keepalive_timeout 15s;" in upstream_config
    location = m["nginx"]["virtualHosts"]["cnn-mnist"]["locations"]["/"]
    assert location["proxyPass"] == "http://cnn-mnist"
    assert "proxy_next_upstream error timeout http_502 http_503 http_504 non_idempotent;" in location["extraConfig"]
    assert "proxy_next_upstream_tries 3;" in location["extraConfig"]
    assert "client_max_body_size 4194304;" in location["extraConfig"]
    assert m["firewall"]["allowedTCPPorts"] == [80]
    # the backends' names resolve to the private addresses NixOps gave them
    assert m["extraHosts"].splitlines() == [f"192.168.56.{100 + i} backend-{i}" for i in range(1, 4)]


def test_network_with_instances_runs_them_on_every_machine():
    network = f"({flake_expr()}.outputs.nixopsConfigurations.default {{ replicas = 2; instances = 2; }})"
    backend = eval_modules(f"[ {network}.backend-1 ]", nodes=NODES)
    assert backend["failedAssertions"] == []
    assert sorted(backend["services"]) == ["cnn-mnist-1", "cnn-mnist-2"]
    assert backend["firewall"]["allowedTCPPorts"] == [8080, 8081]
    proxy = eval_modules(f"[ {network}.proxy ]", nodes=NODES)
    servers = ["backend-1:8080", "backend-1:8081", "backend-2:8080", "backend-2:8081"]
    assert sorted(proxy["nginx"]["upstreams"]["cnn-mnist"]["servers"]) == servers
    single = eval_modules(f"[ ({flake_expr()}.outputs.nixopsConfigurations.default {{ instances = 3; }}).cnn-mnist ]")
    assert sorted(single["services"]) == ["cnn-mnist-1", "cnn-mnist-2", "cnn-mnist-3"]
    assert sorted(single["nginx"]["upstreams"]["cnn-mnist"]["servers"]) == [
        f"127.0.0.1:{p}" for p in (8080, 8081, 8082)
    ]


def test_network_rejects_zero_replicas():
    proc = run_nix("--eval", "--strict", "-E", f"builtins.attrNames ({flake_expr()}.machines 0)")
    assert proc.returncode != 0 and "assertion" in proc.stderr


def test_scale_out_vm_test_stops_a_backend_behind_the_proxy():
    expr = f"{flake_expr()}.scaleOutTest"
    proc = run_nix(
        "--eval",
        "--strict",
        "--json",
        "-E",
        f"let t = {expr}; in {{ inherit (t) name testScript; nodes = builtins.attrNames t.nodes; }}",
    )
    assert proc.returncode == 0, proc.stderr
    t = json.loads(proc.stdout)
    assert t["nodes"] == ["backend1", "backend2", "proxy"]
    script = t["testScript"]
    ast.parse(script)
    assert 'backend1.succeed("systemctl stop cnn-mnist-1.service")' in script
    assert 'backend2.succeed(f"systemctl stop {units}")' in script
    assert 'assert "FAILED" not in results' in script
    # a model change reloads both processes (switch-to-configuration) under load
    assert "specialisation/second-model/bin/switch-to-configuration test" in script
    assert 'assert pids == after, f"restarted, not reloaded' in script
    # two server processes per backend (services.cnn-mnist.instances), each a target of the proxy
    backend = eval_modules(f"[ {expr}.nodes.backend1 ]")
    assert backend["failedAssertions"] == []
    assert sorted(backend["services"]) == ["cnn-mnist-1", "cnn-mnist-2"]
    for unit, port in [("cnn-mnist-1", "8080"), ("cnn-mnist-2", "8081")]:
        exec_start = backend["services"][unit]["serviceConfig"]["ExecStart"].split()
        assert exec_start[1:5] == ["--host", "0.0.0.0", "--port", port]
        assert f'("{unit}.service", {port})' in script
    assert backend["firewall"]["allowedTCPPorts"] == [8080, 8081]
    assert backend["etc"]["cnn-mnist/model"]["source"].endswith("-cnn-mnist-model-quick")
    lib = f"(import {json.dumps(nixpkgs_lib())})"
    second = f"({expr}.nodes.backend1 {{ lib = {lib}; }}).specialisation.second-model.configuration"
    proc = run_nix("--eval", "--strict", "--json", "-E", f"{second}.services.cnn-mnist.model.content.name")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == "cnn-mnist-model-quick-seed-1"  # the quick model with another seed
    proxy = eval_modules(f"[ {expr}.nodes.proxy ]")
    servers = ["backend1:8080", "backend1:8081", "backend2:8080", "backend2:8081"]
    assert sorted(proxy["nginx"]["upstreams"]["cnn-mnist"]["servers"]) == servers
    location = proxy["nginx"]["virtualHosts"]["cnn-mnist"]["locations"]["/"]
    assert "proxy_next_upstream_tries 4;" in location["extraConfig"]


def test_vm_test_keeps_a_correction_then_reloads():
    test = f"{flake_expr()}.outputs.checks.x86_64-linux.nixos.test"
    proc = run_nix("--eval", "--strict", "--json", "-E", f"let t = {test}; in {{ inherit (t) testScript; }}")
    assert proc.returncode == 0, proc.stderr
    script = json.loads(proc.stdout)["testScript"]
    ast.parse(script)  # the driver's Python, at least well-formed
    assert 'json.loads(server.succeed("cnn-mnist-corrections stats"))' in script
    assert script.index("/v1/corrections") < script.index("switch-to-configuration test")
    server = eval_modules(f"[ {test}.nodes.server ]")
    assert server["failedAssertions"] == []
    flags = shlex.split(server["service"]["serviceConfig"]["ExecStart"])
    assert flags[flags.index("--corrections") + 1] == "/var/lib/cnn-mnist/corrections.sqlite"
    assert flags[flags.index("--trusted-proxy") + 1] == "127.0.0.1"
    assert [p["name"] for p in server["systemPackages"]] == ["cnn-mnist-corrections", "curl"]


# --- NixOps' VirtualBox plugin at nixos-26.05 ---------------------------------------------------


# what nixops-vbox's virtualbox-image-nixops.nix and 26.05's kernel.nix add to every VirtualBox machine
VBOX = f"[ {flake_expr()}.vbox.removedVesa {flake_expr()}.vbox.pluginSetsVesa ]"


def test_removed_boot_vesa_breaks_a_machine_that_defines_it():
    # lib.mkRemovedOptionModule (nixpkgs' real lib): defining the option at all, even `false`, is a
    # failed assertion, i.e. `nixops deploy` stops at evaluation
    [message] = eval_modules(f"[ {ROOT}/module.nix ] ++ {VBOX}")["failedAssertions"]
    assert message.startswith("The option definition `boot.vesa' in ") and "no longer has any effect" in message


@pytest.mark.parametrize("replicas, name", [(1, "cnn-mnist"), (3, "backend-1"), (3, "proxy")])
def test_virtualbox_machines_evaluate_despite_the_plugins_boot_vesa(replicas: int, name: str):
    machine = f"({flake_expr()}.machines {replicas}).{name}"
    m = eval_modules(f"[ {machine} ] ++ {VBOX}", nodes=NODES)
    assert m["failedAssertions"] == []


def test_boot_vesa_true_still_fails_on_a_virtualbox_machine():
    # only the plugin's no-op `false` is let through
    expr = flake_expr()
    m = eval_modules(f"[ ({expr}.machines 1).cnn-mnist {expr}.vbox.removedVesa {expr}.vbox.userSetsVesa ]")
    [message] = m["failedAssertions"]
    assert "`boot.vesa'" in message and "vga=0x317" in message
