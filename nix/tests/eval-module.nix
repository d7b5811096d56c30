# Evaluates the NixOS module with the real module system (lib.evalModules)
# over stubs of the few NixOS options it sets and of the packages it uses, so
# that it runs without nixpkgs' package set:
#
#   nix-instantiate --eval --strict --json nix/tests/eval-module.nix \
#     --arg lib 'import /path/to/nixpkgs/lib' [--arg extra '{ … }']
#
# Prints the failed assertions, the rendered /etc/pi-agent/config.json, the
# sudo rules, the created user and the installed commands.
{
  lib,
  extra ? { },
}:
let
  mkPkg = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
    meta.mainProgram = name;
  };

  pkgs =
    lib.genAttrs [
      "bash"
      "coreutils"
      "findutils"
      "gnugrep"
      "gnused"
      "gawk"
      "gnutar"
      "gzip"
      "diffutils"
      "which"
      "git"
      "ripgrep"
      "fd"
    ] mkPkg
    // {
      callPackage = _fn: _args: mkPkg "pi-agent";
      buildEnv = args: mkPkg args.name;
      runCommand = name: _env: _script: mkPkg name;
      formats.json = _: {
        type = lib.types.attrsOf lib.types.anything;
        generate = name: value: mkPkg name // { json = builtins.toJSON value; };
      };
    };

  anything = default: lib.mkOption {
    type = lib.types.anything;
    inherit default;
  };

  stubs = {
    options = {
      assertions = lib.mkOption {
        type = lib.types.listOf lib.types.unspecified;
        default = [ ];
      };
      users.users = lib.mkOption {
        type = lib.types.attrsOf lib.types.anything;
        default = { };
      };
      users.groups = lib.mkOption {
        type = lib.types.attrsOf lib.types.anything;
        default = { };
      };
      systemd.tmpfiles.settings = anything { };
      environment.etc = lib.mkOption {
        type = lib.types.attrsOf lib.types.anything;
        default = { };
      };
      environment.systemPackages = lib.mkOption {
        type = lib.types.listOf lib.types.anything;
        default = [ ];
      };
      security.sudo.enable = anything true;
      security.sudo.extraRules = anything [ ];
      security.sudo-rs.enable = anything false;
      security.sudo-rs.extraRules = anything [ ];
      meta = anything { };
    };
  };

  base = {
    users.users.alice.isNormalUser = true;
    m3ta.pi-agent = {
      enable = true;
      agentPackage = mkPkg "pi-coding-agent" // {
        meta.mainProgram = "pi";
      };
      hostUsers.alice.projectRoots = [ "~/p" ];
    };
  };

  eval = lib.evalModules {
    modules = [
      stubs
      ../modules/nixos.nix
      base
      extra
    ];
    specialArgs = { inherit pkgs; };
  };
  inherit (eval) config;
in
{
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
  config = builtins.fromJSON config.environment.etc."pi-agent/config.json".source.json;
  sudo = config.security.sudo.extraRules;
  user = config.users.users.pi-agent;
  commands = map (p: p.name) config.environment.systemPackages;
  tmpfiles = config.systemd.tmpfiles.settings;
}
