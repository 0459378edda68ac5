# NixOS VM test of the scale-out: two backends behind the proxy, each running
# two server processes (nix/scale-out.nix, as nixops-deployment.nix deploys it
# with replicas = 2 and instances = 2).  Requests through the proxy keep
# succeeding while one process, then one whole backend, is stopped, and every
# process answers some of them; a new model reloads both processes of a
# backend at once, and no request fails meanwhile.
#
#   nix build .#checks.x86_64-linux.nixos-scale-out
{
  pkgs,
  model ? pkgs.cnn-mnist-model.override (import ./quick-model.nix),
  # the model the backends switch to (as nix/nixos-test.nix's: another seed)
  secondModel ? model.override { seed = 1; },
}:

let
  scaleOut = import ./scale-out.nix {
    backends = [
      "backend1"
      "backend2"
    ];
    instances = 2;
  };
  backend =
    { lib, ... }:
    {
      imports = [ scaleOut.backend ];
      virtualisation.memorySize = 4096; # two processes (docs/operations.md: memory per process)
      virtualisation.cores = 2;
      services.cnn-mnist.model = model;
      specialisation.second-model.configuration = {
        services.cnn-mnist.model = lib.mkForce secondModel;
      };
    };
in
pkgs.testers.runNixOSTest {
  name = "cnn-mnist-scale-out";

  nodes = {
    backend1 = backend;
    backend2 = backend;
    proxy = {
      imports = [ scaleOut.proxy ];
      environment.systemPackages = [ pkgs.curl ];
    };
  };

  testScript = ''
    import json

    predict = (
        "curl -sf -X POST -H 'Content-Type: application/json' "
        "--data '{\"instances\": [[" + ",".join(["[" + ",".join(["0"] * 28) + "]"] * 28) + "]]}' "
        "http://localhost/v1/models/cnn-mnist:predict"
    )

    # each backend's processes: units cnn-mnist-1 and cnn-mnist-2 on ports 8080 and 8081
    processes = [("cnn-mnist-1.service", 8080), ("cnn-mnist-2.service", 8081)]
    units = " ".join(unit for unit, _ in processes)

    def wait_ready(backend):
        for unit, port in processes:
            backend.wait_for_unit(unit)
            backend.wait_until_succeeds(f"curl -sf http://localhost:{port}/readyz", timeout=300)

    def answered(backend, port):
        metrics = backend.succeed(f"curl -sf http://localhost:{port}/metrics")
        return sum(
            float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("cnn_mnist_predictions_total")
        )

    start_all()
    for backend in [backend1, backend2]:
        wait_ready(backend)
    proxy.wait_for_unit("nginx.service")
    proxy.wait_for_open_port(80)
    proxy.succeed(predict)

    def start_requests():
        proxy.succeed("rm -f /tmp/stop /tmp/results")
        proxy.succeed(
            "(while [ ! -e /tmp/stop ]; do "
            + predict + " >/dev/null && echo ok >> /tmp/results || echo FAILED >> /tmp/results; "
            + "done) >/dev/null 2>&1 &"
        )
        proxy.wait_until_succeeds("test $(wc -l < /tmp/results) -ge 20")

    def stop_requests():
        proxy.succeed("touch /tmp/stop")
        proxy.sleep(2)
        results = proxy.succeed("cat /tmp/results").split()
        assert "FAILED" not in results, f"{results.count('FAILED')} of {len(results)} requests failed"
        return results

    def serving_sha256(backend, port):
        return json.loads(backend.succeed(f"curl -sf http://localhost:{port}/readyz"))["model"]["sha256"]

    with subtest("a stopped process, then a stopped backend, is invisible to clients"):
        start_requests()
        backend1.succeed("systemctl stop cnn-mnist-1.service")
        proxy.sleep(5)
        backend1.succeed("systemctl start cnn-mnist-1.service")
        wait_ready(backend1)
        backend2.succeed(f"systemctl stop {units}")
        proxy.sleep(5)
        backend2.succeed(f"systemctl start {units}")
        wait_ready(backend2)
        proxy.sleep(5)
        results = stop_requests()
        assert len(results) > 40, f"only {len(results)} requests"

    with subtest("every process served some of them"):
        for backend in [backend1, backend2]:
            for unit, port in processes:
                assert answered(backend, port) > 0, f"{backend.name} {unit} answered nothing"

    with subtest("a new model reloads both processes of a backend at once, and no request fails"):
        pids = [backend1.succeed(f"systemctl show -P MainPID {unit}").strip() for unit, _ in processes]
        before = [serving_sha256(backend1, port) for _, port in processes]
        start_requests()
        backend1.succeed("/run/current-system/specialisation/second-model/bin/switch-to-configuration test")
        for (_, port), sha256 in zip(processes, before):
            backend1.wait_until_succeeds(
                f"curl -sf http://localhost:{port}/readyz | grep -qv {sha256}", timeout=120
            )
        proxy.sleep(2)  # a few more requests on the new model
        stop_requests()
        after = [backend1.succeed(f"systemctl show -P MainPID {unit}").strip() for unit, _ in processes]
        assert pids == after, f"restarted, not reloaded: {pids} -> {after}"
        for unit, _ in processes:
            backend1.succeed(f"journalctl -u {unit} | grep -q 'Reload'")
  '';
}
