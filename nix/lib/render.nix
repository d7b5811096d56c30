# Renders the options of the NixOS module m3ta.pi-agent into the runner's
# /etc/pi-agent/config.json, as an attribute set for builtins.toJSON.
#
# Pure and self-contained (builtins only, no nixpkgs): CI evaluates it with
# `nix-instantiate --eval --strict --json` and feeds the result to the Go
# config loader, whose strict decoding rejects any field the Go side does not
# know. Keep the two sides in step: a field renamed on one side fails there.
#
# cfg is config.m3ta.pi-agent; agentCommand and agentPath are derived from
# its packages by the module (so this file needs no pkgs).
{
  cfg,
  agentCommand,
  agentPath,
}:
let
  nullOr = default: value: if value == null then default else value;
in
{
  inherit (cfg)
    stateDir
    user
    group
    backend
    settings
    environment
    ;
  environmentFiles = map toString cfg.environmentFiles;
  agent = {
    command = agentCommand;
    path = agentPath;
  };
  hostUsers = builtins.mapAttrs (_name: u: {
    inherit (u) projectRoots;
    configPath = nullOr cfg.wrapper.hostConfigPath u.configPath;
  }) cfg.hostUsers;
  sandbox = {
    inherit (cfg.sandbox)
      readOnlyPaths
      network
      memoryMax
      pidsMax
      tmpSize
      projectScope
      ;
  };
  sync = {
    inherit (cfg.sync)
      exclude
      maxFileSize
      maxTotalSize
      maxEntries
      ;
  };
}
