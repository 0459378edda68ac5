# Scale-out: backends running services.cnn-mnist, and a proxy whose nginx
# spreads requests over every server process on them (nix/upstream.nix: a
# process that is down, restarting or slow to answer is taken out of rotation,
# and the request it failed is retried on the next one, so clients do not see
# it).  With `instances` > 1, each backend runs that many processes on ports
# port, port + 1, …, and the proxy lists each one.  Used by
# nixops-deployment.nix and the VM test.
{
  # host names of the backends, e.g. [ "backend-1" "backend-2" ]
  backends,
  port ? 8080,
  # server processes per backend (services.cnn-mnist.instances)
  instances ? 1,
}:

let
  ports = builtins.genList (i: port + i) instances;
in
{
  # services.cnn-mnist on every address, for the proxy
  backend = {
    imports = [ ../module.nix ];
    services.cnn-mnist = {
      enable = true;
      host = "0.0.0.0";
      inherit port instances;
    };
    networking.firewall.allowedTCPPorts = ports;
  };

  proxy =
    { config, ... }:
    let
      nginx = import ./upstream.nix {
        servers = builtins.concatMap (host: map (p: "${host}:${toString p}") ports) backends;
        inherit (config.services.cnn-mnist) channelTimeout maxBodyBytes;
      };
    in
    {
      # for services.cnn-mnist's maxBodyBytes and channelTimeout: what the backends enforce
      imports = [ ../module.nix ];
      services.nginx = {
        enable = true;
        upstreams.cnn-mnist = nginx.upstream;
        virtualHosts.cnn-mnist = {
          default = true;
          extraConfig = ''
            client_header_timeout 10s;
            client_body_timeout 10s;
          '';
          locations."/" = nginx.location // {
            proxyPass = "http://cnn-mnist";
          };
        };
      };
      networking.firewall.allowedTCPPorts = [ 80 ];
    };
}
