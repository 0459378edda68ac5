# Scale-out: backends running services.cnn-mnist, and a proxy whose nginx
# spreads requests over them.  A backend that is down, restarting or slow to
# answer is taken out of rotation (max_fails / fail_timeout), and the request
# it failed is retried on the next one (proxy_next_upstream), so clients do
# not see it.  Used by nixops-deployment.nix and the VM test.
{
  # host names of the backends, e.g. [ "backend-1" "backend-2" ]
  backends,
  port ? 8080,
}:

{
  # services.cnn-mnist on every address, for the proxy
  backend = {
    imports = [ ../module.nix ];
    services.cnn-mnist = {
      enable = true;
      host = "0.0.0.0";
      inherit port;
    };
    networking.firewall.allowedTCPPorts = [ port ];
  };

  proxy =
    { config, ... }:
    {
      # for services.cnn-mnist.maxBodyBytes: the body limit the backends enforce
      imports = [ ../module.nix ];
      services.nginx = {
        enable = true;
        upstreams.cnn-mnist = {
          servers = builtins.listToAttrs (
            map (host: {
              name = "${host}:${toString port}";
              value = {
                max_fails = 1;
                fail_timeout = "10s";
              };
            }) backends
          );
          # idle connections to a backend close before the backend closes them (--channel-timeout)
          extraConfig = ''
            keepalive 16;
            keepalive_timeout ${toString (builtins.div config.services.cnn-mnist.channelTimeout 2)}s;
          '';
        };
        virtualHosts.cnn-mnist = {
          default = true;
          extraConfig = ''
            client_header_timeout 10s;
            client_body_timeout 10s;
          '';
          locations."/" = {
            proxyPass = "http://cnn-mnist";
            recommendedProxySettings = true;
            extraConfig = ''
              client_max_body_size ${toString config.services.cnn-mnist.maxBodyBytes};
              proxy_http_version 1.1;
              proxy_set_header Connection "";
              proxy_connect_timeout 2s;
              proxy_send_timeout 30s;
              proxy_read_timeout 30s;
              # predictions are idempotent: retry them on another backend
              proxy_next_upstream error timeout http_502 http_503 http_504 non_idempotent;
              proxy_next_upstream_tries ${toString (builtins.length backends)};
            '';
          };
        };
      };
      networking.firewall.allowedTCPPorts = [ 80 ];
    };
}
