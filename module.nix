# services.cnn-mnist: serve a Keras MNIST model over HTTP, optionally behind
# nginx.  Changing `model` and running `nixos-rebuild switch` reloads the
# server (SIGHUP: load, check and swap the new model without dropping a
# request) instead of restarting it.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib) literalExpression types;

  cfg = config.services.cnn-mnist;

  supportedBackends = [
    "tensorflow"
    "jax"
    "torch"
  ];

  # Used when nixpkgs does not carry the overlay (../nix/overlay.nix).
  defaultPackage = pkgs.cnn-mnist or (pkgs.callPackage ./package.nix { });
  defaultModel = pkgs.cnn-mnist-model or (pkgs.callPackage ./model.nix { cnn-mnist = defaultPackage; });

  package = cfg.package.override { inherit (cfg) backend; };

  # The server reads the model through this stable link.  A new model only
  # changes the link's target (in /etc) and the unit's reload trigger, so
  # switch-to-configuration reloads the unit rather than restarting it.
  modelLink = "cnn-mnist/model";
  modelPath = "/etc/${modelLink}";

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
in
{
  options.services.cnn-mnist = {
    enable = lib.mkEnableOption "cnn-mnist, an HTTP server for a Keras MNIST digit classifier";

    package = lib.mkOption {
      type = types.package;
      default = defaultPackage;
      defaultText = literalExpression "pkgs.cnn-mnist";
      example = literalExpression "pkgs.cnn-mnist.overridePythonAttrs { doCheck = false; }";
      description = ''
        The cnn-mnist package.  It is overridden with
        `{ backend = config.services.cnn-mnist.backend; }`, so that it carries
        the selected backend's libraries.
      '';
    };

    host = lib.mkOption {
      type = types.str;
      default = "127.0.0.1";
      example = "0.0.0.0";
      description = "The address the server listens on.";
    };

    port = lib.mkOption {
      type = types.port;
      default = 8080;
      example = 5000;
      description = "The TCP port the server listens on.";
    };

    backend = lib.mkOption {
      type = types.enum (supportedBackends ++ [ "theano" ]);
      default = "tensorflow";
      example = "jax";
      description = ''
        The Keras backend the server runs the model with.  `"theano"` is
        rejected with an explanation: Keras 3 has no Theano backend.
      '';
    };

    model = lib.mkOption {
      type = types.path;
      default = defaultModel;
      defaultText = literalExpression "pkgs.cnn-mnist-model";
      example = literalExpression "pkgs.cnn-mnist-model.override { epochs = 5; seed = 1; }";
      description = ''
        The model to serve: a `.keras` or `.h5` file, a trainer output
        directory containing `model.keras`, or a directory of versions `1/`,
        `2/`, ….  The server reads it through the stable link
        `/etc/${modelLink}`; changing it reloads the server instead of
        restarting it, without dropping a request.
      '';
    };

    threads = lib.mkOption {
      type = types.ints.positive;
      default = 4;
      example = 8;
      description = "Number of threads serving requests.";
    };

    openFirewall = lib.mkOption {
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

      virtualHost = lib.mkOption {
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

    environment = lib.mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = {
        OMP_NUM_THREADS = "2";
        TF_CPP_MIN_LOG_LEVEL = "2";
      };
      description = "Extra environment variables for the server.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.backend != "theano";
        message = ''
          services.cnn-mnist.backend = "theano" is not supported: Keras 3 removed
          the Theano backend (Theano itself is unmaintained since 2017).  Use one
          of: ${lib.concatStringsSep ", " supportedBackends}.
        '';
      }
    ];

    environment.etc.${modelLink}.source = cfg.model;

    systemd.services.cnn-mnist = {
      description = "cnn-mnist: MNIST digit classifier over HTTP";
      wantedBy = [ "multi-user.target" ];
      after = [ "network.target" ];

      environment = cfg.environment // {
        MODEL = modelPath;
        HOME = "/var/cache/cnn-mnist";
        XDG_CACHE_HOME = "/var/cache/cnn-mnist";
        KERAS_HOME = "/var/cache/cnn-mnist/keras";
        MPLCONFIGDIR = "/var/cache/cnn-mnist/matplotlib";
      };

      # a new model reloads (ExecReload) rather than restarts
      reloadTriggers = [ cfg.model ];

      serviceConfig = {
        Type = "exec";
        ExecStart = lib.escapeShellArgs [
          (lib.getExe package)
          "--host"
          cfg.host
          "--port"
          (toString cfg.port)
          "--backend"
          cfg.backend
          "--threads"
          (toString cfg.threads)
        ];
        # SIGHUP: re-resolve MODEL, load and check the new model in the
        # background, then swap it in
        ExecReload = "${pkgs.coreutils}/bin/kill -HUP $MAINPID";
        # SIGTERM: finish the requests in flight, then exit 0
        KillSignal = "SIGTERM";
        TimeoutStopSec = 30;
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
      };
    };

    services.nginx = lib.mkIf cfg.nginx.enable {
      enable = true;
      virtualHosts.${cfg.nginx.virtualHost}.locations."/" = {
        proxyPass = "http://${proxyHost}:${toString cfg.port}";
        recommendedProxySettings = true;
      };
    };

    networking.firewall = lib.mkIf cfg.openFirewall {
      allowedTCPPorts =
        if cfg.nginx.enable then [ 80 ] ++ lib.optional vhostUsesTLS 443 else [ cfg.port ];
    };
  };
}
