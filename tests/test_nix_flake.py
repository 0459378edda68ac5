"""The flake's outputs (tests/nix/flake-eval.nix: nixpkgs' real lib, a stub nixosSystem) and the
NixOS modules they yield, evaluated with the real lib.evalModules (tests/nix/module-eval.nix):
nixosConfigurations.cnn-mnist, nixosModules.default with read-only pkgs, and the NixOps network
(nixops-deployment.nix as nixopsConfigurations.default) for 1 and 3 replicas."""

from __future__ import annotations

import json

import pytest

from nixeval import HARNESS, ROOT, nixpkgs_lib, eval_json, run_nix



def flake_expr() -> str:
    return f"(import {HARNESS}/flake-eval.nix {{ nixpkgsLib = {json.dumps(nixpkgs_lib())}; }})"


def flake_report():
    return eval_json(HARNESS / "flake-eval.nix", "--argstr", "nixpkgsLib", nixpkgs_lib(), "-A", "report")


def eval_modules(modules: str, enable: str = "null", pkgs: str | None = None, nodes: str | None = None):
    """module-eval.nix on the given NixOS modules (a Nix expression for a list)."""
    args = ["--argstr", "nixpkgsLib", nixpkgs_lib(), "--arg", "modules", modules, "--arg", "enable", enable]
    if nodes is not None:
        args += ["--arg", "nodes", nodes]
    if pkgs is not None:
        args += ["--arg", "pkgs", pkgs]
    return eval_json(HARNESS / "module-eval.nix", *args)


def test_flake_pins_a_stable_release():
    r = flake_report()
    assert r["inputUrl"] == "github:NixOS/nixpkgs/nixos-25.11"
    lock = json.loads((ROOT / "flake.lock").read_text())["nodes"]["nixpkgs"]
    assert lock["original"]["ref"] == "nixos-25.11"
    assert lock["locked"]["rev"] == "3ceaaa8bc963ced4d830e06ea2d0863b6490ff03"
    assert lock["locked"]["lastModified"] > 1768521600  # after 2026-01-16 (NixOps on Python 3.13)


def test_flake_outputs_and_checks():
    r = flake_report()
    assert {"nixosConfigurations", "nixopsConfigurations", "nixosModules", "packages", "checks",
            "formatter", "overlays"} <= set(r["outputNames"])
    # `nix flake check` trains, tests and gates a quick model, and runs both VM tests
    assert r["checks"] == ["model-quick", "nixos", "nixos-scale-out", "pytest"]


def test_nixos_configuration_is_a_complete_host():
    r = flake_report()
    assert r["host"] == {"system": "x86_64-linux", "modules": ["lambda", "host.nix", "no-hardware.nix"]}
    # nixosSystem's pkgs: nixpkgs without the overlay, so the flake's own package serves
    host = eval_modules(f"{flake_expr()}.outputs.nixosConfigurations.cnn-mnist.nixosSystemArgs.modules",
                        pkgs=f"{flake_expr()}.readOnlyPkgs")
    svc = host["service"]
    assert svc["serviceConfig"]["ExecStart"].split()[0].endswith("-cnn-mnist-flake/bin/cnn-mnist")
    assert host["nginx"]["enable"] is True
    vhost = host["nginx"]["virtualHosts"]["cnn-mnist"]
    assert vhost["locations"]["/"]["proxyPass"] == "http://127.0.0.1:8080"
    assert vhost["default"] is True
    assert host["firewall"]["allowedTCPPorts"] == [80]
    # without the machine's hardware-configuration.nix: one clear assertion, saying how to get it
    [message] = host["failedAssertions"]
    assert "hardware-configuration.nix" in message and "nixos-generate-config" in message


def test_nixos_module_works_with_read_only_pkgs():
    # No overlay (nixpkgs.pkgs / readOnlyPkgs / runNixOSTest): the stubs declare no nixpkgs.* option,
    # so a module that set nixpkgs.overlays would fail to evaluate here.
    r = eval_modules(f"[ {flake_expr()}.outputs.nixosModules.default ]", enable="true",
                     pkgs=f"{flake_expr()}.readOnlyPkgs")
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
NODES = "{ " + " ".join(f'backend-{i}.config.networking.privateIPv4 = "192.168.56.{100 + i}";'
                        for i in range(1, 4)) + " }"


def machine(replicas: int, name: str):
    return eval_modules(f"[ ({flake_expr()}.machines {replicas}).{name} ]", nodes=NODES)


@pytest.mark.parametrize("replicas, machines", [
    (1, ["cnn-mnist"]), (3, ["backend-1", "backend-2", "backend-3", "proxy"])])
def test_network_has_storage_and_the_flakes_nixpkgs(replicas: int, machines: list[str]):
    net = flake_report()["networks"][str(replicas)]
    assert net["machines"] == machines
    # NixOps 2 rejects a network without network.storage.*
    assert net["network"]["storage"] == {"legacy": {}}
    assert f"{replicas} replica" in net["network"]["description"]
    # the flake's network has the `nixpkgs` NixOps evaluates it with; the file has one for nixops.nix
    assert net["flakeNixpkgs"].endswith("-nixpkgs-source")
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


def test_network_rejects_zero_replicas():
    proc = run_nix("--eval", "--strict", "-E", f"builtins.attrNames ({flake_expr()}.machines 0)")
    assert proc.returncode != 0 and "assertion" in proc.stderr


def test_scale_out_vm_test_stops_a_backend_behind_the_proxy():
    expr = f"{flake_expr()}.scaleOutTest"
    proc = run_nix("--eval", "--strict", "--json", "-E",
                   f"let t = {expr}; in {{ inherit (t) name testScript; nodes = builtins.attrNames t.nodes; }}")
    assert proc.returncode == 0, proc.stderr
    t = json.loads(proc.stdout)
    assert t["nodes"] == ["backend1", "backend2", "proxy"]
    script = t["testScript"]
    assert 'backend1.succeed("systemctl stop cnn-mnist.service")' in script
    assert 'assert "FAILED" not in results' in script
    backend = eval_modules(f"[ {expr}.nodes.backend1 ]")
    assert backend["failedAssertions"] == []
    assert backend["service"]["serviceConfig"]["ExecStart"].split()[1:3] == ["--host", "0.0.0.0"]
    assert backend["etc"]["cnn-mnist/model"]["source"].endswith("-cnn-mnist-model-quick")
    proxy = eval_modules(f"[ {expr}.nodes.proxy ]")
    assert sorted(proxy["nginx"]["upstreams"]["cnn-mnist"]["servers"]) == ["backend1:8080", "backend2:8080"]
