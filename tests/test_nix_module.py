"""module.nix under nixpkgs' real lib.evalModules (../shared/nixpkgs-lib/lib, or NIXPKGS_LIB), with
stand-ins only for what nixpkgs would provide (tests/nix/module-eval.nix)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
from nixeval import HARNESS, ROOT, eval_error, eval_json, nix_literal, nixpkgs_lib

SERVER_DEFAULTS = json.loads((ROOT / "cnn_mnist" / "serving" / "server-defaults.json").read_text())


# --- module.nix under lib.evalModules ------------------------------------------


def module_args(settings: dict | None = None, extra: str | None = None, with_fakes: str | None = None):
    args = ["--argstr", "nixpkgsLib", nixpkgs_lib()]
    if settings is not None:
        args += ["--arg", "settings", nix_literal(settings)]
    if extra is not None:
        args += ["--arg", "extraConfig", extra]
    if with_fakes is not None:
        args += ["--arg", "withFakes", with_fakes]
    return args


def eval_module(settings: dict | None = None, extra: str | None = None, with_fakes: str | None = None):
    return eval_json(HARNESS / "module-eval.nix", *module_args(settings, extra, with_fakes))


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


def test_module_unit_exec_start_and_environment():
    r = eval_module(
        {"backend": "jax", "port": 9000, "host": "0.0.0.0", "threads": 2, "environment": {"OMP_NUM_THREADS": "2"}}
    )
    svc = r["service"]
    exec_start = svc["serviceConfig"]["ExecStart"].split()
    # lib.getExe of the package overridden with the backend
    assert exec_start[0].endswith("-cnn-mnist-jax/bin/cnn-mnist")
    assert exec_start[1:9] == ["--host", "0.0.0.0", "--port", "9000", "--backend", "jax", "--threads", "2"]
    assert svc["environment"]["MODEL"] == "/etc/cnn-mnist/model"
    assert svc["environment"]["OMP_NUM_THREADS"] == "2"
    for var in ["HOME", "KERAS_HOME", "MPLCONFIGDIR", "XDG_CACHE_HOME"]:
        assert svc["environment"][var].startswith("/var/cache/cnn-mnist")
    assert "multi-user.target" in svc["wantedBy"]
    assert r["failedAssertions"] == []


def test_module_unit_hardening():
    sc = eval_module()["service"]["serviceConfig"]
    assert sc["DynamicUser"] is True
    assert sc["ProtectSystem"] == "strict"
    for key in [
        "PrivateTmp",
        "NoNewPrivileges",
        "ProtectHome",
        "PrivateDevices",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectControlGroups",
        "RestrictNamespaces",
        "RestrictSUIDSGID",
        "LockPersonality",
    ]:
        assert sc[key] is True, key
    assert sorted(sc["RestrictAddressFamilies"]) == ["AF_INET", "AF_INET6", "AF_UNIX"]
    assert "@system-service" in " ".join(sc["SystemCallFilter"])
    assert any(f.startswith("~@privileged") for f in sc["SystemCallFilter"])
    assert sc["SystemCallArchitectures"] == "native"
    assert sc["CapabilityBoundingSet"] == [""]
    # every supported backend JITs CPU code, so W^X stays off (see module.nix)
    assert sc["MemoryDenyWriteExecute"] is False


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
    # systemd sends SIGHUP itself and waits for the server's RELOADING=1 … READY=1 (tests/test_readiness.py)
    config = sa["serviceConfig"]
    assert (config["Type"], config["NotifyAccess"], config["ReloadSignal"]) == ("notify-reload", "main", "SIGHUP")
    assert "ExecReload" not in config


def test_module_disabled_sets_nothing():
    r = eval_module({"enable": False})
    assert r["service"] is None
    assert r["etc"] == {}
    assert r["nginx"] == {} and r["firewall"] == {}


def test_module_nginx_virtual_host_and_firewall():
    r = eval_module({"nginx": {"enable": True, "virtualHost": "mnist.example.org"}, "port": 8081, "openFirewall": True})
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
    assert r["nginx"]["virtualHosts"]["testhost"]["locations"]["/"]["proxyPass"] == "http://127.0.0.1:8080"
    assert r["firewall"] == {}  # openFirewall is off


def test_module_open_firewall_without_nginx():
    r = eval_module({"openFirewall": True, "port": 8123})
    assert r["firewall"]["allowedTCPPorts"] == [8123]
    assert r["nginx"] == {}


def test_module_theano_is_rejected_with_an_explanation():
    r = eval_module({"backend": "theano"})
    assert len(r["failedAssertions"]) == 1
    message = r["failedAssertions"][0]
    assert "theano" in message and "Keras 3" in message
    assert "tensorflow, jax, torch" in message


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"port": 70000}, "16 bit unsigned integer"),
        ({"backend": "mxnet"}, "one of"),
        ({"threads": 0}, "positive integer"),
        ({"channelTimeout": 2.5}, "positive integer"),
    ],
)
def test_module_rejects_ill_typed_values(settings: dict, message: str):
    stderr = eval_error(HARNESS / "module-eval.nix", *module_args(settings))
    assert message in stderr


# --- the server's settings, from cnn_mnist/serving/server-defaults.json ----------------

FLAGS = {  # option -> (flag, key in server-defaults.json)
    "threads": ("--threads", "threads"),
    "maxBodyBytes": ("--max-body-bytes", "max_body_bytes"),
    "maxImagesPerRequest": ("--max-images-per-request", "max_images_per_request"),
    "maxImagePixels": ("--max-image-pixels", "max_image_pixels"),
    "maxRequestPixels": ("--max-request-pixels", "max_request_pixels"),
    "maxInFlight": ("--max-in-flight", "max_in_flight"),
    "drainSeconds": ("--drain-seconds", "drain_seconds"),
    "connectionLimit": ("--connection-limit", "connection_limit"),
    "channelTimeout": ("--channel-timeout", "channel_timeout"),
    "minAccuracy": ("--min-accuracy", "min_accuracy"),
    "maxRegression": ("--max-regression", "max_regression"),
}


def flag_values(exec_start: str) -> dict:
    words = shlex.split(exec_start)  # systemd's quoting (lib.escapeShellArgs) is the shell's
    return {word: words[i + 1] for i, word in enumerate(words) if word.startswith("--")}


def test_module_server_settings_default_to_server_defaults_json():
    r = eval_module()
    flags = flag_values(r["service"]["serviceConfig"]["ExecStart"])
    # every option as module.nix declares it (nixosOptionsDoc's reading), without a list of names to keep
    declared = {o["name"]: o for o in eval_json(HARNESS / "options-doc.nix", "--argstr", "nixpkgsLib", nixpkgs_lib())}
    for option, (flag, key) in FLAGS.items():
        declaration = declared[f"services.cnn-mnist.{option}"]
        assert float(declaration["default"]["text"]) == SERVER_DEFAULTS[key], option
        assert float(flags[flag]) == SERVER_DEFAULTS[key], flag
        assert declaration["description"] and declaration["example"] is not None, option
    assert "--canary" not in flags  # the canary set shipped in the package
    # systemd must not kill the server while it drains
    assert r["service"]["serviceConfig"]["TimeoutStopSec"] > SERVER_DEFAULTS["drain_seconds"]


def test_module_server_settings_reach_the_command_line():
    r = eval_module(
        {
            "threads": 3,
            "maxBodyBytes": 1000,
            "maxImagesPerRequest": 4,
            "maxImagePixels": 5000,
            "maxRequestPixels": 6000,
            "maxInFlight": 2,
            "drainSeconds": 2.5,
            "connectionLimit": 50,
            "channelTimeout": 7,
            "minAccuracy": 0.97,
            "maxRegression": 0.005,
            "canary": "/srv/canary.npz",
        }
    )
    sc = r["service"]["serviceConfig"]
    assert flag_values(sc["ExecStart"]) | {} == {
        "--host": "127.0.0.1",
        "--port": "8080",
        "--backend": "tensorflow",
        "--threads": "3",
        "--max-body-bytes": "1000",
        "--max-images-per-request": "4",
        "--max-image-pixels": "5000",
        "--max-request-pixels": "6000",
        "--max-in-flight": "2",
        "--drain-seconds": "2.5",
        "--connection-limit": "50",
        "--channel-timeout": "7",
        "--min-accuracy": "0.97",
        "--max-regression": "0.005",
        "--canary": "/srv/canary.npz",
    }
    assert sc["TimeoutStopSec"] > 2.5
    assert eval_module({"drainSeconds": 100})["service"]["serviceConfig"]["TimeoutStopSec"] > 100


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"minAccuracy": 1.5}, "between 0 and 1"),
        ({"maxRegression": -0.1}, "between 0 and 1"),
        ({"drainSeconds": 0}, "positive"),
        ({"maxBodyBytes": 0}, "positive integer"),
        ({"maxInFlight": 0}, "positive integer"),
    ],
)
def test_module_rejects_bad_server_settings(settings: dict, message: str):
    assert message in eval_error(HARNESS / "module-eval.nix", *module_args(settings))


def test_module_nginx_body_size_and_timeouts_follow_the_server():
    r = eval_module({"nginx": {"enable": True, "virtualHost": "m"}, "maxBodyBytes": 123456})
    vhost = r["nginx"]["virtualHosts"]["m"]
    location = vhost["locations"]["/"]["extraConfig"]
    assert "client_max_body_size 123456;" in location
    for directive in ["proxy_connect_timeout", "proxy_send_timeout", "proxy_read_timeout"]:
        assert directive in location, directive
    assert "client_header_timeout" in vhost["extraConfig"]
    assert "client_body_timeout" in vhost["extraConfig"]


# --- the package option ---------------------------------------------------------


def test_module_accepts_a_package_without_override():
    # overridePythonAttrs' result has no .override: it is used as it is
    r = eval_module({"backend": "jax"}, with_fakes='f: { services.cnn-mnist.package = f.withoutOverride "jax"; }')
    assert r["failedAssertions"] == []
    assert r["service"]["serviceConfig"]["ExecStart"].split()[0].endswith("-cnn-mnist-jax-custom/bin/cnn-mnist")
    # a derivation that does not say which backend it carries is trusted
    r = eval_module({"backend": "torch"}, with_fakes="f: { services.cnn-mnist.package = f.plain; }")
    assert r["failedAssertions"] == []
    assert r["service"]["serviceConfig"]["ExecStart"].split()[0].endswith("-my-cnn-mnist/bin/cnn-mnist")


def test_module_package_for_another_backend_without_override_is_a_clear_error():
    r = eval_module({"backend": "torch"}, with_fakes='f: { services.cnn-mnist.package = f.withoutOverride "jax"; }')
    [message] = r["failedAssertions"]
    assert "carries the jax backend" in message and 'backend = "torch"' in message


# --- models and labels: a versions directory ------------------------------------


def run_versions_script(script: str, out: Path):
    """Runs the versions directory's build script as the builder would, with $out set."""
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env={"out": str(out), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_module_models_and_labels_build_a_versions_directory(tmp_path: Path):
    trained = tmp_path / "store" / "cnn-mnist-model"
    trained.mkdir(parents=True)
    (trained / "model.keras").write_text("k")
    single = tmp_path / "store" / "candidate.keras"
    single.write_text("k")
    legacy = tmp_path / "store" / "old.h5"
    legacy.write_text("h")
    r = eval_module(
        {"models": {"1": str(legacy), "2": str(trained), "3": str(single)}, "labels": {"stable": "2", "canary": "3"}}
    )
    assert r["failedAssertions"] == []
    source = r["etc"]["cnn-mnist/model"]["source"]
    assert source.endswith("-cnn-mnist-versions")
    svc = r["service"]
    assert svc["environment"]["MODEL"] == "/etc/cnn-mnist/model"
    assert svc["reloadTriggers"] == [source]  # a new version or label reloads

    out = tmp_path / "versions"
    proc = run_versions_script(r["versionsScript"], out)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["1", "2", "3", "canary", "stable"]
    assert os.readlink(out / "2") == str(trained)  # a trainer output directory, linked
    assert os.readlink(out / "3" / "model.keras") == str(single)  # a single file, in a directory
    assert os.readlink(out / "1" / "model.h5") == str(legacy)
    assert os.readlink(out / "stable") == "2" and os.readlink(out / "canary") == "3"  # relative
    assert (out / "stable" / "model.keras").read_text() == "k"


def test_module_versions_script_refuses_a_model_of_another_type(tmp_path: Path):
    odd = tmp_path / "model.onnx"
    odd.write_text("x")
    r = eval_module({"models": {"1": str(odd)}})
    proc = run_versions_script(r["versionsScript"], tmp_path / "versions")
    assert proc.returncode != 0
    assert "neither a .keras nor a .h5 file" in proc.stderr


def test_module_label_change_only_changes_the_link_and_the_reload_trigger():
    models = {"1": "/srv/a.keras", "2": "/srv/b.keras"}
    a = eval_module({"models": models, "labels": {"stable": "1"}})
    b = eval_module({"models": models, "labels": {"stable": "2"}})
    assert a["etc"] != b["etc"]
    assert a["service"]["serviceConfig"] == b["service"]["serviceConfig"]  # no restart
    assert a["service"]["reloadTriggers"] != b["service"]["reloadTriggers"]


def test_module_one_model_shorthand_when_models_is_empty():
    r = eval_module({"model": "/srv/models/a.keras"})
    assert r["options"]["models"]["default"] == {} and r["options"]["labels"]["default"] == {}
    assert r["etc"]["cnn-mnist/model"]["source"] == "/srv/models/a.keras"
    assert r["versionsScript"] is None


@pytest.mark.parametrize(
    "settings, fragment",
    [
        (
            {"models": {"1": "/srv/a.keras"}, "labels": {"stable": "2"}},
            "stable -> 2 names a version that services.cnn-mnist.models does not have (it has: 1)",
        ),
        (
            {"models": {"v1": "/srv/a.keras", "0": "/srv/b.keras"}},
            'must be positive integers ("1", "2", …), not "0", "v1"',
        ),
        ({"models": {"1": "/srv/a.keras"}, "labels": {"7": "1"}}, 'taken for a version): "7"'),
        ({"models": {"1": "/srv/a.keras"}, "labels": {"../x": "1"}}, '"../x"'),
    ],
)
def test_module_rejects_bad_versions_and_labels(settings: dict, fragment: str):
    messages = eval_module(settings)["failedAssertions"]
    assert len(messages) == 1 and fragment in messages[0], messages


# --- instances: N server processes on one host behind nginx -----------------------


def test_module_one_instance_is_the_single_unit_of_the_option_unset():
    settings = {"nginx": {"enable": True}, "openFirewall": True, "port": 8090}
    unset, one = eval_module(settings), eval_module({**settings, "instances": 1})
    assert one["options"]["instances"]["default"] == 1
    for key in ["services", "nginx", "firewall", "etc", "failedAssertions"]:
        assert one[key] == unset[key], key
    assert list(one["services"]) == ["cnn-mnist"]
    sc = one["service"]["serviceConfig"]
    assert sc["DynamicUser"] is True and "User" not in sc
    assert flag_values(sc["ExecStart"])["--port"] == "8090"
    assert "upstreams" not in one["nginx"]
    assert one["nginx"]["virtualHosts"]["testhost"]["locations"]["/"]["proxyPass"] == "http://127.0.0.1:8090"


def test_module_three_instances_are_three_units_on_three_ports_behind_one_upstream():
    r = eval_module({"instances": 3, "port": 9000, "backend": "jax", "nginx": {"enable": True}, "openFirewall": True})
    assert r["failedAssertions"] == []
    units = r["services"]
    assert sorted(units) == ["cnn-mnist-1", "cnn-mnist-2", "cnn-mnist-3"]
    ports = {name: flag_values(unit["serviceConfig"]["ExecStart"])["--port"] for name, unit in units.items()}
    assert ports == {"cnn-mnist-1": "9000", "cnn-mnist-2": "9001", "cnn-mnist-3": "9002"}
    single = eval_module({"port": 9000, "backend": "jax"})["service"]
    for name, unit in units.items():
        sc = unit["serviceConfig"]
        # each is readied, reloaded (on a model change) and drained on its own, as the single unit is
        assert (sc["Type"], sc["NotifyAccess"], sc["ReloadSignal"]) == ("notify-reload", "main", "SIGHUP")
        assert unit["reloadTriggers"] == single["reloadTriggers"] and "restartTriggers" not in unit
        assert sc["TimeoutStopSec"] == single["serviceConfig"]["TimeoutStopSec"]
        assert unit["environment"] == single["environment"]
        # only the port differs from the single unit's command line
        assert sc["ExecStart"] == single["serviceConfig"]["ExecStart"].replace("--port 9000", f"--port {ports[name]}")
        # one dynamic user for all: they share the cache directory
        assert (sc["DynamicUser"], sc["User"], sc["CacheDirectory"]) == (True, "cnn-mnist", "cnn-mnist")
    upstream = r["nginx"]["upstreams"]["cnn-mnist"]
    every = {"max_fails": 1, "fail_timeout": "10s"}
    assert upstream["servers"] == {f"127.0.0.1:{p}": every for p in (9000, 9001, 9002)}
    assert "keepalive 16;" in upstream["extraConfig"]
    location = r["nginx"]["virtualHosts"]["testhost"]["locations"]["/"]
    assert location["proxyPass"] == "http://cnn-mnist"
    assert "proxy_next_upstream error timeout http_502 http_503 http_504 non_idempotent;" in location["extraConfig"]
    assert "proxy_next_upstream_tries 3;" in location["extraConfig"]
    assert r["firewall"]["allowedTCPPorts"] == [80]  # the processes stay behind nginx


def test_module_instances_without_nginx_open_every_port():
    r = eval_module({"instances": 2, "openFirewall": True, "host": "0.0.0.0"})
    assert r["firewall"]["allowedTCPPorts"] == [8080, 8081]
    assert r["nginx"] == {}


def test_module_instances_past_the_last_port_are_refused():
    [message] = eval_module({"instances": 3, "port": 65534})["failedAssertions"]
    assert "needs ports up to 65536, past 65535" in message
    assert "positive integer" in eval_error(HARNESS / "module-eval.nix", *module_args({"instances": 0}))


# --- corrections: one store for every process ------------------------------------


def test_module_corrections_are_off_by_default():
    r = eval_module()
    assert r["options"]["correctionsEnable"]["default"] is False
    assert r["options"]["correctionsDatabase"]["default"] == "sqlite"
    assert r["options"]["correctionsPerMinute"]["default"] == SERVER_DEFAULTS["corrections_per_minute"]
    flags = flag_values(r["service"]["serviceConfig"]["ExecStart"])
    assert not {"--corrections", "--corrections-per-minute", "--trusted-proxy"} & set(flags)
    assert r["users"] == {} and r["postgresql"] == {} and r["systemPackages"] == []


def test_module_corrections_in_sqlite_share_one_file_under_a_static_user():
    r = eval_module({"instances": 2, "corrections": {"enable": True, "perMinute": 12}, "nginx": {"enable": True}})
    assert r["failedAssertions"] == []
    for unit in r["services"].values():
        sc = unit["serviceConfig"]
        flags = flag_values(sc["ExecStart"])
        assert flags["--corrections"] == "/var/lib/cnn-mnist/corrections.sqlite"
        assert flags["--corrections-per-minute"] == "12"
        assert flags["--trusted-proxy"] == "127.0.0.1"  # the local nginx's X-Forwarded-For is believed
        # one static user for every process and for the review tool, and the file in its StateDirectory
        assert (sc["DynamicUser"], sc["User"], sc["Group"], sc["StateDirectory"]) == (
            False,
            "cnn-mnist",
            "cnn-mnist",
            "cnn-mnist",
        )
        assert "postgresql.target" not in unit["after"]
    assert r["users"]["users"]["cnn-mnist"] == {
        "isSystemUser": True,
        "group": "cnn-mnist",
        "description": "cnn-mnist server",
    }
    assert r["users"]["groups"] == {"cnn-mnist": {}}
    assert r["postgresql"] == {}
    [tool] = r["systemPackages"]
    assert tool["name"] == "cnn-mnist-corrections"
    assert 'CORRECTIONS="${CORRECTIONS:-/var/lib/cnn-mnist/corrections.sqlite}"' in tool["text"]
    assert "runuser -u cnn-mnist -- " in tool["text"] and "/bin/cnn-mnist-corrections" in tool["text"]


def test_module_corrections_tool_runs_as_the_servers_user(tmp_path: Path):
    r = eval_module({"corrections": {"enable": True}})
    script = tmp_path / "cnn-mnist-corrections"
    # the fake store paths point nowhere: stand-ins for runuser and the CLI echo what they were given
    text = r["systemPackages"][0]["text"].replace("/nix/store/", f"{tmp_path}/store/")
    for program in ["runuser", "cnn-mnist-corrections"]:
        for found in {word.split(f"{tmp_path}/store/", 1)[1] for word in text.split() if word.endswith(program)}:
            fake = tmp_path / "store" / found
            fake.parent.mkdir(parents=True, exist_ok=True)
            fake.write_text(f'#!/bin/sh\necho {program} "$CORRECTIONS" "$@"\n')
            fake.chmod(0o755)
    script.write_text("set -euo pipefail\n" + text)
    env = {"PATH": "/usr/bin:/bin"}
    ran = subprocess.run(["bash", str(script), "stats"], env=env, capture_output=True, text=True, timeout=30)
    assert ran.returncode == 0, ran.stderr
    first = "runuser" if os.geteuid() == 0 else "cnn-mnist-corrections"
    assert ran.stdout.split()[:2] == [first, "/var/lib/cnn-mnist/corrections.sqlite"]
    other = subprocess.run(
        ["bash", str(script), "stats"],
        env={**env, "CORRECTIONS": "/srv/x.sqlite"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert other.stdout.split()[1] == "/srv/x.sqlite"  # an administrator may name another store


def test_module_corrections_in_postgresql_enable_it_with_a_role_for_the_user():
    r = eval_module({"instances": 3, "corrections": {"enable": True, "database": "postgresql"}})
    assert r["failedAssertions"] == []
    assert r["postgresql"] == {
        "enable": True,
        "ensureDatabases": ["cnn-mnist"],
        "ensureUsers": [{"name": "cnn-mnist", "ensureDBOwnership": True}],
    }
    # peer authentication: the servers' user is the role's name
    assert r["users"]["users"]["cnn-mnist"]["isSystemUser"] is True
    for unit in r["services"].values():
        sc = unit["serviceConfig"]
        flags = flag_values(sc["ExecStart"])
        assert flags["--corrections"] == "postgresql:///cnn-mnist?host=/run/postgresql"
        assert "--trusted-proxy" not in flags  # no nginx: the peer is the client
        assert (sc["DynamicUser"], sc["User"]) == (False, "cnn-mnist") and "StateDirectory" not in sc
        # the database is there (and the role made) before a server opens the store
        assert "postgresql.target" in unit["after"] and unit["requires"] == ["postgresql.target"]
    assert "postgresql:///cnn-mnist?host=/run/postgresql" in r["systemPackages"][0]["text"]


def test_module_corrections_trusted_proxy_is_nginx_on_ipv6_loopback():
    r = eval_module({"host": "::", "nginx": {"enable": True}, "corrections": {"enable": True}})
    assert flag_values(r["service"]["serviceConfig"]["ExecStart"])["--trusted-proxy"] == "::1"


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"corrections": {"enable": True, "database": "mysql"}}, "one of"),
        ({"corrections": {"enable": True, "perMinute": -1}}, "unsigned integer"),
    ],
)
def test_module_rejects_bad_corrections_settings(settings: dict, message: str):
    assert message in eval_error(HARNESS / "module-eval.nix", *module_args(settings))
