# NixOS VM test of the scale-out: two backends behind the proxy
# (nix/scale-out.nix, as nixops-deployment.nix deploys it with replicas = 2).
# Requests through the proxy keep succeeding while one backend is stopped.
#
#   nix build .#checks.x86_64-linux.nixos-scale-out
{
  pkgs,
  model ? pkgs.cnn-mnist-model.override (import ./quick-model.nix),
}:

let
  scaleOut = import ./scale-out.nix {
    backends = [
      "backend1"
      "backend2"
    ];
  };
  backend = {
    imports = [ scaleOut.backend ];
    virtualisation.memorySize = 3072;
    virtualisation.cores = 2;
    services.cnn-mnist.model = model;
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
    predict = (
        "curl -sf -X POST -H 'Content-Type: application/json' "
        "--data '{\"instances\": [[" + ",".join(["[" + ",".join(["0"] * 28) + "]"] * 28) + "]]}' "
        "http://localhost/v1/models/cnn-mnist:predict"
    )

    start_all()
    for backend in [backend1, backend2]:
        backend.wait_for_unit("cnn-mnist.service")
        backend.wait_until_succeeds("curl -sf http://localhost:8080/readyz", timeout=300)
    proxy.wait_for_unit("nginx.service")
    proxy.wait_for_open_port(80)
    proxy.succeed(predict)

    with subtest("a stopped backend is invisible to clients"):
        proxy.succeed(
            "(while [ ! -e /tmp/stop ]; do "
            + predict + " >/dev/null && echo ok >> /tmp/results || echo FAILED >> /tmp/results; "
            + "done) >/dev/null 2>&1 &"
        )
        proxy.wait_until_succeeds("test $(wc -l < /tmp/results) -ge 20")
        backend1.succeed("systemctl stop cnn-mnist.service")
        proxy.sleep(5)
        backend1.succeed("systemctl start cnn-mnist.service")
        backend1.wait_until_succeeds("curl -sf http://localhost:8080/readyz", timeout=300)
        backend2.succeed("systemctl stop cnn-mnist.service")
        proxy.sleep(5)
        proxy.succeed("touch /tmp/stop")
        proxy.sleep(2)
        results = proxy.succeed("cat /tmp/results").split()
        assert "FAILED" not in results, f"{results.count('FAILED')} of {len(results)} requests failed"
        assert len(results) > 40, f"only {len(results)} requests"
  '';
}
