# nginx in front of several cnn-mnist processes: the `upstream` listing them
# and the location proxying to it.  Used by module.nix (instances > 1 on one
# host) and nix/scale-out.nix (the proxy in front of the backends), so both
# take a process out of rotation and retry the same way.
#
# A process that is down, restarting or draining is taken out of rotation for
# fail_timeout after one failure (max_fails), and the request it failed is
# retried on the next one (proxy_next_upstream): predictions are idempotent.
{
  # "host:port" of every process
  servers,
  # the processes' --channel-timeout: idle upstream connections close first
  channelTimeout,
  # the processes' --max-body-bytes
  maxBodyBytes,
}:

{
  upstream = {
    servers = builtins.listToAttrs (
      map (server: {
        name = server;
        value = {
          max_fails = 1;
          fail_timeout = "10s";
        };
      }) servers
    );
    extraConfig = ''
      keepalive 16;
      keepalive_timeout ${toString (builtins.div channelTimeout 2)}s;
    '';
  };

  # the location "/" for `proxyPass = "http://<upstream name>"`
  location = {
    recommendedProxySettings = true;
    extraConfig = ''
      client_max_body_size ${toString maxBodyBytes};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_connect_timeout 2s;
      proxy_send_timeout 30s;
      proxy_read_timeout 30s;
      # predictions are idempotent: retry them on another process
      proxy_next_upstream error timeout http_502 http_503 http_504 non_idempotent;
      proxy_next_upstream_tries ${toString (builtins.length servers)};
    '';
  };
}
