# NixOS VM test: the module behind nginx answers a test digit on port 80, keeps
# a correction in its SQLite store for cnn-mnist-corrections (run as the
# servers' static user), then switches to a second model by reloading,
# without a failed request.
#
#   nix build .#checks.x86_64-linux.nixos     or     nix-build -A nixosTest
{
  pkgs,
  # small, fast models; the second differs only in its seed
  firstModel ? pkgs.cnn-mnist-model.override (import ./quick-model.nix),
  secondModel ? firstModel.override { seed = 1; },
}:

let
  # The first test digit of the bundled subset, as a TensorFlow-Serving style
  # request, and its label; and a correction of it (0-255 pixels, another label).
  request =
    pkgs.runCommand "cnn-mnist-test-digit"
      {
        nativeBuildInputs = [ (pkgs.python3.withPackages (ps: [ ps.numpy ])) ];
      }
      ''
        mkdir $out
        python3 - ${../data/mnist-small.npz} $out <<'PY'
        import json, sys, numpy as np
        data = np.load(sys.argv[1])
        image, label = data["x_test"][0], int(data["y_test"][0])
        with open(sys.argv[2] + "/request.json", "w") as f:
            json.dump({"instances": [(image / 255).tolist()]}, f)  # the model's input: 0-1
        with open(sys.argv[2] + "/label", "w") as f:
            f.write(str(label))
        with open(sys.argv[2] + "/correction.json", "w") as f:
            json.dump({"pixels": image.tolist(), "label": (label + 1) % 10}, f)
        PY
      '';
in
pkgs.testers.runNixOSTest {
  name = "cnn-mnist";

  nodes.server =
    { lib, ... }:
    {
      imports = [ ../module.nix ];
      virtualisation.memorySize = 4096;
      virtualisation.cores = 2;

      services.cnn-mnist = {
        enable = true;
        model = firstModel;
        nginx.enable = true;
        nginx.virtualHost = "server";
        openFirewall = true;
        corrections.enable = true; # SQLite in /var/lib/cnn-mnist
      };

      environment.systemPackages = [ pkgs.curl ];

      specialisation.second-model.configuration = {
        services.cnn-mnist.model = lib.mkForce secondModel;
      };
    };

  testScript = ''
    import json

    def predicted_digit(response):
        probabilities = json.loads(response)["predictions"][0]
        return max(range(10), key=lambda digit: probabilities[digit])

    def serving_sha256():
        return json.loads(server.succeed("curl -sf http://localhost/readyz"))["model"]["sha256"]

    label = int(open("${request}/label").read())
    predict = (
        "curl -sf -X POST -H 'Content-Type: application/json' "
        "--data @${request}/request.json "
        "http://localhost/v1/models/cnn-mnist:predict"
    )

    start_all()
    server.wait_for_unit("cnn-mnist.service")
    server.wait_for_unit("nginx.service")
    server.wait_for_open_port(80)
    server.wait_until_succeeds("curl -sf http://localhost/readyz", timeout=300)
    server.succeed("curl -sf http://localhost/healthz")
    server.succeed("curl -sf http://localhost/metrics | grep -q '^# HELP'")

    with subtest("a test digit through nginx on port 80 gets the right answer"):
        digit = predicted_digit(server.succeed(predict))
        assert digit == label, f"predicted {digit}, expected {label}"

    with subtest("a correction through nginx is kept where cnn-mnist-corrections reads it"):
        answer = json.loads(server.succeed(
            "curl -sf -X POST -H 'Content-Type: application/json' "
            "--data @${request}/correction.json http://localhost/v1/corrections"
        ))
        assert answer["status"] == "pending", answer
        stats = json.loads(server.succeed("cnn-mnist-corrections stats"))
        assert stats["pending"] == 1, stats
        # the servers' static user owns the store, and the tool (run by root) leaves it so
        server.succeed("cnn-mnist-corrections backup /var/lib/cnn-mnist/backup.sqlite")
        owners = server.succeed("stat -c %U /var/lib/cnn-mnist/*.sqlite*").split()
        assert set(owners) == {"cnn-mnist"}, owners

    with subtest("switching the model reloads without a failed request"):
        pid_before = server.succeed("systemctl show -P MainPID cnn-mnist.service").strip()
        sha256_before = serving_sha256()
        assert server.succeed("readlink -f /etc/cnn-mnist/model").strip() == "${firstModel}"
        server.succeed(
            "(while [ ! -e /tmp/stop ]; do "
            + predict + " >/dev/null && echo ok >> /tmp/results || echo FAILED >> /tmp/results; "
            + "done) >/dev/null 2>&1 &"
        )
        server.wait_until_succeeds("test $(wc -l < /tmp/results) -ge 5")
        server.succeed(
            "/run/current-system/specialisation/second-model/bin/switch-to-configuration test"
        )
        assert server.succeed("readlink -f /etc/cnn-mnist/model").strip() == "${secondModel}"
        # the new model is loaded and checked in the background, then swapped in
        server.wait_until_succeeds(
            "curl -sf http://localhost/readyz | grep -qv " + sha256_before, timeout=120
        )
        server.sleep(2)  # a few more requests on the new model
        server.succeed("touch /tmp/stop")
        server.sleep(2)
        results = server.succeed("cat /tmp/results").split()
        assert "FAILED" not in results, f"{results.count('FAILED')} of {len(results)} requests failed"
        pid_after = server.succeed("systemctl show -P MainPID cnn-mnist.service").strip()
        assert pid_before == pid_after, "the server was restarted, not reloaded"
        server.succeed("journalctl -u cnn-mnist.service | grep -q 'Reload'")
        digit = predicted_digit(server.succeed(predict))
        assert digit == label, f"second model predicted {digit}, expected {label}"
  '';
}
