# The config the NixOS module renders for a full example, without nixpkgs:
#   nix-instantiate --eval --strict --json nix/tests/render-example.nix
# sandbox/nix_test.go loads the result with the Go config loader and checks
# that every field of the Go schema is rendered.
import ../lib/render.nix {
  agentCommand = [ "/nix/store/00000000000000000000000000000000-pi-coding-agent-1.6.0/bin/pi" ];
  agentPath = "/nix/store/00000000000000000000000000000000-pi-agent-path/bin";
  cfg = {
    stateDir = "/var/lib/pi-agent";
    user = "pi-agent";
    group = "pi-agent";
    backend = "oci";
    settings = {
      defaultProvider = "anthropic";
      compaction.enabled = true;
    };
    environment.ANTHROPIC_BASE_URL = "https://llm-proxy.internal";
    environmentFiles = [
      "/run/secrets/pi-agent.env"
      "-/etc/pi-agent/optional.env"
    ];
    wrapper.hostConfigPath = ".pi/agent";
    hostUsers = {
      m3tam3re = {
        projectRoots = [
          "~/p"
          "/srv/code"
        ];
        configPath = null;
      };
      guest = {
        projectRoots = [ "~/sandbox" ];
        configPath = ".config/pi";
      };
    };
    sandbox = {
      readOnlyPaths = null;
      network = "host";
      memoryMax = "8G";
      pidsMax = 4096;
      tmpSize = "2G";
      projectScope = "root";
    };
    sync = {
      exclude = [ "/extensions/cache" ];
      maxFileSize = "64M";
      maxTotalSize = "512M";
      maxEntries = 100000;
    };
  };
}
