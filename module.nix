# services.cnn-mnist: serve a Keras MNIST model over HTTP, optionally behind
# nginx.  Changing the model (or a version, or a label) and running
# `nixos-rebuild switch` reloads the server (SIGHUP: load, canary-check and
# swap without dropping a request) instead of restarting it.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib) literalExpression mkOption types;

  cfg = config.services.cnn-mnist;

  # The server's defaults, shared with its CLI (cnn_mnist/serving/defaults.py).
  defaults = lib.importJSON ./cnn_mnist/serving/server-defaults.json;

  backends = import ./nix/backends.nix { inherit lib; };
  supportedBackends = backends.supported;

  # pkgs.cnn-mnist when an overlay provides it, else this checkout's package.
  # (The flake's nixosModules.default puts the flake's own package here.)
  defaultPackage = pkgs.cnn-mnist or (pkgs.callPackage ./package.nix { });
  defaultModel =
    pkgs.cnn-mnist-model or (pkgs.callPackage ./model.nix {
      cnn-mnist-trainer = pkgs.cnn-mnist-trainer or (pkgs.callPackage ./nix/trainer.nix { });
    });

  # The package for cfg.backend.  A package that says which backend it carries
  # (passthru.backend) is overridden only when that differs; one without
  # `.override` (e.g. made with overridePythonAttrs) must already carry it.
  packageBackend = cfg.package.backend or null;
  packageFits = packageBackend == null || packageBackend == cfg.backend;
  package =
    if packageFits || !(cfg.package ? override) then
      cfg.package
    else
      cfg.package.override { inherit (cfg) backend; };

  # `models` builds a versions directory; otherwise `model` is served as is.
  servedModel =
    if cfg.models != { } then
      import ./nix/versions.nix { inherit (pkgs) runCommandLocal lib; } {
        inherit (cfg) models labels;
      }
    else
      cfg.model;

  # The server reads the model through this stable link.  A new model only
  # changes the link's target (in /etc) and the unit's reload trigger, so
  # switch-to-configuration reloads the unit rather than restarting it.
  modelLink = "cnn-mnist/model";
  modelPath = "/etc/${modelLink}";

  number = builtins.toJSON; # 30.0 -> "30", 0.9 -> "0.9"

  # nginx proxies to loopback when the server listens on every address
  proxyHost =
    if cfg.host == "0.0.0.0" then
      "127.0.0.1"
    else if cfg.host == "::" || cfg.host == "[::]" then
      "[::1]"
    else if lib.hasInfix ":" cfg.host && !(lib.hasPrefix "[" cfg.host) then
      "[${cfg.host}]"
    else
      cfg.host;

  vhost = config.services.nginx.virtualHosts.${cfg.nginx.virtualHost} or { };
  vhostUsesTLS = vhost.forceSSL or false || vhost.addSSL or false || vhost.onlySSL or false;

  positiveInteger = builtins.match "[1-9][0-9]*";
  badVersions = builtins.filter (v: positiveInteger v == null) (builtins.attrNames cfg.models);
  badLabelNames = builtins.filter (
    l: builtins.match "[A-Za-z][A-Za-z0-9_-]*" l == null
  ) (builtins.attrNames cfg.labels);
  danglingLabels = lib.filterAttrs (_: v: !(cfg.models ? ${v})) cfg.labels;

  # The server processes: one is the unit cnn-mnist on `port`; N > 1 are
  # cnn-mnist-1 … cnn-mnist-N on port, port + 1, …, port + N - 1.
  instances = builtins.genList (i: {
    unit = if cfg.instances == 1 then "cnn-mnist" else "cnn-mnist-${toString (i + 1)}";
    port = cfg.port + i;
  }) cfg.instances;
  lastPort = cfg.port + cfg.instances - 1;

  # One server process's unit, listening on `port`
  serverUnit = port: {
    description =
      "cnn-mnist: MNIST digit classifier over HTTP"
      + lib.optionalString (cfg.instances > 1) " (port ${toString port})";
    wantedBy = [ "multi-user.target" ];
    after = [ "network.target" ] ++ lib.optional postgresql "postgresql.target";
    requires = lib.optional postgresql "postgresql.target";

    environment = cfg.environment // {
      MODEL = modelPath;
      HOME = "/var/cache/cnn-mnist";
      XDG_CACHE_HOME = "/var/cache/cnn-mnist";
      KERAS_HOME = "/var/cache/cnn-mnist/keras";
      MPLCONFIGDIR = "/var/cache/cnn-mnist/matplotlib";
    };

    # a new model, version or label reloads (SIGHUP) rather than restarts
    reloadTriggers = [ servedModel ];

    serviceConfig = {
      # Up only once the server says READY=1 (sd_notify: model loaded,
      # canary-checked and warmed, port open), not when the process starts;
      # a reload is SIGHUP, then RELOADING=1 … READY=1 from the server, so
      # `systemctl reload` returns when the new model serves or was refused.
      Type = "notify-reload";
      NotifyAccess = "main";
      ReloadSignal = "SIGHUP";
      ExecStart = lib.escapeShellArgs (
        [
          (lib.getExe package)
          "--host"
          cfg.host
          "--port"
          (toString port)
          "--backend"
          cfg.backend
          "--threads"
          (toString cfg.threads)
          "--max-body-bytes"
          (toString cfg.maxBodyBytes)
          "--max-images-per-request"
          (toString cfg.maxImagesPerRequest)
          "--max-image-pixels"
          (toString cfg.maxImagePixels)
          "--max-request-pixels"
          (toString cfg.maxRequestPixels)
          "--max-in-flight"
          (toString cfg.maxInFlight)
          "--drain-seconds"
          (number cfg.drainSeconds)
          "--connection-limit"
          (toString cfg.connectionLimit)
          "--channel-timeout"
          (number cfg.channelTimeout)
          "--min-accuracy"
          (number cfg.minAccuracy)
          "--max-regression"
          (number cfg.maxRegression)
        ]
        ++ lib.optionals (cfg.canary != null) [
          "--canary"
          "${cfg.canary}"
        ]
        ++ correctionsFlags
      );
      # (SIGHUP, ReloadSignal above: re-resolve MODEL, load and canary-check
      # the new model in the background, then swap it in)
      # SIGTERM: finish the requests in flight (up to drainSeconds), then exit 0
      KillSignal = "SIGTERM";
      TimeoutStopSec = builtins.ceil cfg.drainSeconds + 15;
      Restart = "on-failure";

      DynamicUser = true;
      CacheDirectory = "cnn-mnist";
      WorkingDirectory = "/var/cache/cnn-mnist";

      # hardening
      CapabilityBoundingSet = [ "" ];
      AmbientCapabilities = [ "" ];
      DevicePolicy = "closed";
      LockPersonality = true;
      # W^X stays off: every backend generates machine code at run time (XLA for jax and
      # tensorflow's jit_compile, oneDNN's xbyak kernels for tensorflow and torch).
      MemoryDenyWriteExecute = false;
      NoNewPrivileges = true;
      PrivateDevices = true;
      PrivateTmp = true;
      PrivateUsers = true;
      ProcSubset = "all"; # the backends read /proc/cpuinfo and /proc/meminfo
      ProtectClock = true;
      ProtectControlGroups = true;
      ProtectHome = true;
      ProtectHostname = true;
      ProtectKernelLogs = true;
      ProtectKernelModules = true;
      ProtectKernelTunables = true;
      ProtectProc = "invisible";
      ProtectSystem = "strict";
      RemoveIPC = true;
      RestrictAddressFamilies = [
        "AF_INET"
        "AF_INET6"
        "AF_UNIX"
      ];
      RestrictNamespaces = true;
      RestrictRealtime = true;
      RestrictSUIDSGID = true;
      SystemCallArchitectures = "native";
      SystemCallFilter = [
        "@system-service @resources"
        "~@privileged"
      ];
      UMask = "0077";
    }
    // unitUser;
  };

  # Who the units run as.  N > 1 processes run as one dynamic user, so that
  # they share the cache directory: units naming the same User= share one
  # dynamic UID (systemd's dynamic-user.c keeps one allocation per name);
  # units of their own would each chown it.  Corrections need a static user
  # instead (see `user` below).
  unitUser =
    if corrections.enable then
      {
        DynamicUser = false;
        User = user;
        Group = user;
      }
      // lib.optionalAttrs sqlite { StateDirectory = "cnn-mnist"; }
    else
      lib.optionalAttrs (cfg.instances > 1) {
        User = "cnn-mnist";
        Group = "cnn-mnist";
      };

  # Corrections: one store for every process.  The user is static, not
  # dynamic: PostgreSQL's peer authentication maps it to its role, and an
  # administrator's `cnn-mnist-corrections` runs as it, so that a SQLite
  # file (and its -wal and -shm files) stays the servers' to write.
  corrections = cfg.corrections;
  user = "cnn-mnist";
  sqlite = corrections.enable && corrections.database == "sqlite";
  postgresql = corrections.enable && corrections.database == "postgresql";
  store =
    if corrections.database == "sqlite" then
      "/var/lib/cnn-mnist/corrections.sqlite"
    else
      "postgresql:///${user}?host=/run/postgresql";
  # the address the local nginx connects from: its X-Forwarded-For is believed
  nginxAddress = lib.removePrefix "[" (lib.removeSuffix "]" proxyHost);
  correctionsFlags = lib.optionals corrections.enable (
    [
      "--corrections"
      store
      "--corrections-per-minute"
      (toString corrections.perMinute)
    ]
    ++ lib.optionals cfg.nginx.enable [
      "--trusted-proxy"
      nginxAddress
    ]
  );
  # `cnn-mnist-corrections` for administrators, on the store the servers use
  # (CORRECTIONS), run as their user when root runs it
  correctionsTool = pkgs.writeShellApplication {
    name = "cnn-mnist-corrections";
    runtimeInputs = [ pkgs.coreutils ]; # id
    text = ''
      export CORRECTIONS="''${CORRECTIONS:-${store}}"
      if [ "$(id -u)" = 0 ]; then
        exec ${pkgs.util-linux}/bin/runuser -u ${user} -- ${package}/bin/cnn-mnist-corrections "$@"
      fi
      exec ${package}/bin/cnn-mnist-corrections "$@"
    '';
  };

  # nginx in front of N > 1 processes: the upstream the scale-out's proxy uses too
  upstream = import ./nix/upstream.nix {
    servers = map (i: "${proxyHost}:${toString i.port}") instances;
    inherit (cfg) channelTimeout maxBodyBytes;
  };
in
{
  options.services.cnn-mnist = {
    enable = lib.mkEnableOption "cnn-mnist, an HTTP server for a Keras MNIST digit classifier";

    package = mkOption {
      type = types.package;
      default = defaultPackage;
      defaultText = literalExpression "pkgs.cnn-mnist";
      example = literalExpression ''pkgs.cnn-mnist.override { backend = "jax"; }'';
      description = ''
        The cnn-mnist package.  When it carries another backend than
        `backend` (its `passthru.backend`), it is rebuilt with
        `.override { inherit backend; }`; a package without `.override`
        (e.g. made with `overridePythonAttrs`) must carry `backend` already.
      '';
    };

    host = mkOption {
      type = types.str;
      default = "127.0.0.1";
      example = "0.0.0.0";
      description = "The address the server listens on.";
    };

    port = mkOption {
      type = types.port;
      default = 8080;
      example = 5000;
      description = "The TCP port the server listens on.";
    };

    backend = mkOption {
      type = types.enum (supportedBackends ++ [ "theano" ]);
      default = "tensorflow";
      example = "jax";
      description = ''
        The Keras backend the server runs the model with.  `"theano"` is
        rejected with an explanation: Keras 3 has no Theano backend.
      '';
    };

    model = mkOption {
      type = types.path;
      default = defaultModel;
      defaultText = literalExpression "pkgs.cnn-mnist-model";
      example = literalExpression "pkgs.cnn-mnist-model.override { epochs = 5; seed = 1; }";
      description = ''
        The model to serve when `models` is empty: a `.keras` or `.h5` file,
        a trainer output directory containing `model.keras`, or a directory
        of versions `1/`, `2/`, ….  The server reads it through the stable
        link `/etc/${modelLink}`; changing it reloads the server instead of
        restarting it, without dropping a request.
      '';
    };

    models = mkOption {
      type = types.attrsOf types.path;
      default = { };
      example = literalExpression ''
        {
          "1" = pkgs.cnn-mnist-model;
          "2" = pkgs.cnn-mnist-model.override { seed = 1; };
          "3" = ./candidate/model.keras;
        }
      '';
      description = ''
        Versions served side by side, as TensorFlow Serving does, keyed by
        positive integer.  Each is a trainer output directory or a single
        `.keras`/`.h5` file.  The module builds a versions directory in the
        store and serves it instead of `model`.
      '';
    };

    labels = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = {
        stable = "2";
        canary = "3";
      };
      description = ''
        Labels of `models`' versions (`label -> version` links in the
        versions directory).  Requests may name a label
        (`/v1/models/cnn-mnist/labels/canary:predict`).  The default version
        is `current`, else `stable`, else the highest number.  A promotion or
        a rollback is a change of label and a `nixos-rebuild switch`.
      '';
    };

    instances = mkOption {
      type = types.ints.positive;
      default = 1;
      example = 4;
      description = ''
        Server processes on this host.  One process is bound by one core of
        Python, so a host with more cores serves more with more processes.
        1 is the unit `cnn-mnist` on `port`; N > 1 are the units
        `cnn-mnist-1` … `cnn-mnist-N` on `port`, `port + 1`, …,
        `port + N - 1`, behind nginx's `upstream` (with `nginx.enable`).
        Each is readied, reloaded and drained on its own, and each serves
        its own `/metrics`.

        Memory is N times one process.  One process's RSS after warm-up
        (`bench/backend_memory.py`, 2026-12-01): about 680 MB with
        tensorflow, 380 MB with jax, 540 MB with torch.  The processes
        share the backend's libraries' pages, so each further one adds
        less: about 350, 250 and 360 MB (two processes' PSS, same bench).
        Budget N times the RSS to be safe.  A model change reloads
        every process at once (each keeps serving until its new model
        passes the canary check).
      '';
    };

    threads = mkOption {
      type = types.ints.positive;
      default = defaults.threads;
      example = 8;
      description = "Threads serving requests (`--threads`).";
    };

    maxBodyBytes = mkOption {
      type = types.ints.positive;
      default = defaults.max_body_bytes;
      example = 1048576;
      description = ''
        The largest request body the server accepts (`--max-body-bytes`);
        nginx's `client_max_body_size` follows it.
      '';
    };

    maxImagesPerRequest = mkOption {
      type = types.ints.positive;
      default = defaults.max_images_per_request;
      example = 16;
      description = ''
        The most images one request may hold, in any form
        (`--max-images-per-request`); more are refused with a 413 before
        any is decoded.
      '';
    };

    maxImagePixels = mkOption {
      type = types.ints.positive;
      default = defaults.max_image_pixels;
      example = 1048576;
      description = ''
        The most pixels one uploaded image may have, read from its header
        before it is decoded (`--max-image-pixels`); the default fits a
        12-megapixel phone photo.
      '';
    };

    maxRequestPixels = mkOption {
      type = types.ints.positive;
      default = defaults.max_request_pixels;
      example = 4194304;
      description = ''
        The most pixels one request's uploaded images may have together,
        read from their headers before any is decoded
        (`--max-request-pixels`).
      '';
    };

    maxInFlight = mkOption {
      type = types.ints.positive;
      default = defaults.max_in_flight;
      example = 8;
      description = ''
        Prediction requests answered at once (`--max-in-flight`); more are
        refused at once with a 503 and `Retry-After`.  Keep it below
        `threads`, so that threads are left to answer health checks,
        metrics and refusals at once.
      '';
    };

    drainSeconds = mkOption {
      type = types.numbers.positive;
      default = defaults.drain_seconds;
      example = 10;
      description = ''
        On stop, how long requests in flight may take to finish
        (`--drain-seconds`).  systemd's `TimeoutStopSec` is set above it.
      '';
    };

    connectionLimit = mkOption {
      type = types.ints.positive;
      default = defaults.connection_limit;
      example = 500;
      description = "Open connections at most (`--connection-limit`).";
    };

    channelTimeout = mkOption {
      type = types.ints.positive; # whole seconds, as the server takes them
      default = defaults.channel_timeout;
      example = 10;
      description = ''
        Seconds a connection may sit idle or half-sent before the server
        closes it (`--channel-timeout`).
      '';
    };

    minAccuracy = mkOption {
      type = types.numbers.between 0 1;
      default = defaults.min_accuracy;
      example = 0.97;
      description = ''
        The canary accuracy a model must reach before it serves, at start or
        on reload (`--min-accuracy`).
      '';
    };

    maxRegression = mkOption {
      type = types.numbers.between 0 1;
      default = defaults.max_regression;
      example = 0.005;
      description = ''
        On reload, how far below the serving model's canary accuracy a new
        model may score (`--max-regression`); 1 turns the check off.
      '';
    };

    canary = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = literalExpression "./canary/mnist.npz";
      description = ''
        The canary set models are scored on (`--canary`): a Keras
        `mnist.npz` layout or an IDX directory.  `null`: the 1,000 official
        MNIST test digits shipped in the package.
      '';
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = ''
        Whether to open the firewall: `port`, or, with `nginx.enable`,
        nginx's port 80 (and 443 when the virtual host uses TLS).
      '';
    };

    nginx = {
      enable = lib.mkEnableOption "an nginx virtual host proxying to cnn-mnist";

      virtualHost = mkOption {
        type = types.str;
        default = config.networking.fqdnOrHostName;
        defaultText = literalExpression "config.networking.fqdnOrHostName";
        example = "mnist.example.org";
        description = ''
          Name of the `services.nginx.virtualHosts` entry that proxies to
          the server.  Set further options, e.g. TLS, on
          `services.nginx.virtualHosts.<name>` directly.
        '';
      };
    };

    environment = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = {
        OMP_NUM_THREADS = "2";
        TF_CPP_MIN_LOG_LEVEL = "2";
      };
      description = "Extra environment variables for the server.";
    };

    corrections = {
      enable = lib.mkEnableOption ''
        corrections: `POST /v1/corrections` and the page's "wrong, it was …"
        buttons keep what people correct, for review with
        `cnn-mnist-corrections` (on the system's PATH, on this store, run as
        the servers' user).  The servers then run as the static system user
        `cnn-mnist`, not a dynamic one, so that every process and the review
        tool share the store'';

      database = mkOption {
        type = types.enum [
          "sqlite"
          "postgresql"
        ];
        default = "sqlite";
        example = "postgresql";
        description = ''
          Where corrections are kept (`--corrections`).  `"sqlite"`: the file
          `/var/lib/cnn-mnist/corrections.sqlite` in the units'
          `StateDirectory`, shared by every one of `instances`; back it up
          with `cnn-mnist-corrections backup FILE` (SQLite's online backup).
          `"postgresql"`: a database `cnn-mnist` owned by the role
          `cnn-mnist` on this host's `services.postgresql`, which this
          enables (`ensureDatabases`, `ensureUsers`), reached over its Unix
          socket with peer authentication (the static user is the role);
          back it up with `pg_dump`.
        '';
      };

      perMinute = mkOption {
        type = types.ints.unsigned;
        default = defaults.corrections_per_minute;
        example = 10;
        description = ''
          Corrections one client may send a minute
          (`--corrections-per-minute`); past it a 429 with `Retry-After`.
          0 turns the limit off.  Behind `nginx.enable`, the client is the
          address nginx names in `X-Forwarded-For` (`--trusted-proxy` is set
          to nginx's address).
        '';
      };
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.backend != "theano";
        message = backends.theanoRefusal "services.cnn-mnist.backend";
      }
      {
        assertion = packageFits || cfg.package ? override;
        message = ''
          services.cnn-mnist.package carries the ${toString packageBackend} backend and
          has no `.override` to rebuild it for backend = "${cfg.backend}".  Pass a
          package built for it, e.g. (pkgs.cnn-mnist.override { backend = "${cfg.backend}"; })
          before overridePythonAttrs, or set services.cnn-mnist.backend = "${toString packageBackend}".
        '';
      }
      {
        assertion = badVersions == [ ];
        message = "services.cnn-mnist.models: version keys must be positive integers (\"1\", \"2\", …), not ${lib.concatMapStringsSep ", " builtins.toJSON badVersions}.";
      }
      {
        assertion = badLabelNames == [ ];
        message = "services.cnn-mnist.labels: a label name must start with a letter and hold only letters, digits, - and _ (a number would be taken for a version): ${lib.concatMapStringsSep ", " builtins.toJSON badLabelNames}.";
      }
      {
        assertion = lastPort <= 65535;
        message = "services.cnn-mnist: instances = ${toString cfg.instances} from port ${toString cfg.port} needs ports up to ${toString lastPort}, past 65535.";
      }
      {
        assertion = danglingLabels == { };
        message = "services.cnn-mnist.labels: ${
          lib.concatStringsSep ", " (lib.mapAttrsToList (l: v: "${l} -> ${v}") danglingLabels)
        } names a version that services.cnn-mnist.models does not have (it has: ${
          lib.concatStringsSep ", " (builtins.attrNames cfg.models)
        }).";
      }
    ];

    environment.etc.${modelLink}.source = servedModel;

    environment.systemPackages = lib.optional corrections.enable correctionsTool;

    users = lib.mkIf corrections.enable {
      users.${user} = {
        isSystemUser = true;
        group = user;
        description = "cnn-mnist server";
      };
      groups.${user} = { };
    };

    services.postgresql = lib.mkIf postgresql {
      enable = true;
      ensureDatabases = [ user ];
      ensureUsers = [
        {
          name = user;
          ensureDBOwnership = true;
        }
      ];
    };

    systemd.services = builtins.listToAttrs (
      map (i: {
        name = i.unit;
        value = serverUnit i.port;
      }) instances
    );

    services.nginx = lib.mkIf cfg.nginx.enable (
      {
        enable = true;
        virtualHosts.${cfg.nginx.virtualHost} = {
          # nginx reads whole requests from slow clients before it proxies them
          extraConfig = ''
            client_header_timeout 10s;
            client_body_timeout 10s;
          '';
          locations."/" =
            if cfg.instances == 1 then
              {
                proxyPass = "http://${proxyHost}:${toString cfg.port}";
                recommendedProxySettings = true;
                extraConfig = ''
                  client_max_body_size ${toString cfg.maxBodyBytes};
                  proxy_connect_timeout 5s;
                  proxy_send_timeout 30s;
                  proxy_read_timeout 30s;
                '';
              }
            else
              upstream.location // { proxyPass = "http://cnn-mnist"; };
        };
      }
      // lib.optionalAttrs (cfg.instances > 1) { upstreams.cnn-mnist = upstream.upstream; }
    );

    networking.firewall = lib.mkIf cfg.openFirewall {
      allowedTCPPorts =
        if cfg.nginx.enable then [ 80 ] ++ lib.optional vhostUsesTLS 443 else map (i: i.port) instances;
    };
  };
}
