# Evaluates the Home Manager module with lib.evalModules over a stub of
# home.file, like eval-module.nix does for the NixOS module:
#
#   nix-instantiate --eval --strict --json nix/tests/eval-hm.nix --arg lib 'import /path/to/nixpkgs/lib'
{ lib }:
let
  pkgs.formats.json = _: {
    type = lib.types.attrsOf lib.types.anything;
    generate = name: value: {
      type = "derivation";
      inherit name;
      outPath = "/nix/store/00000000000000000000000000000000-${name}";
      json = builtins.toJSON value;
    };
  };
  eval = lib.evalModules {
    modules = [
      {
        options.assertions = lib.mkOption {
          type = lib.types.listOf lib.types.unspecified;
          default = [ ];
        };
        options.home.file = lib.mkOption {
          type = lib.types.attrsOf lib.types.anything;
          default = { };
        };
      }
      ../modules/home-manager.nix
      {
        coding.agents.pi = {
          enable = true;
          # a string, so that evaluation needs no store writes
          agentsInput = toString ./agents-fixture;
          settings.theme = "dark";
          models.providers.ollama = {
            baseUrl = "http://localhost:11434/v1";
            api = "openai-completions";
            models = [ { id = "qwen2.5-coder:7b"; } ];
          };
        };
      }
    ];
    specialArgs = { inherit pkgs; };
  };
in
{
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) eval.config.assertions);
  files = lib.mapAttrs (_: f: {
    source = toString f.source;
    recursive = f.recursive or false;
    json = f.source.json or null;
  }) eval.config.home.file;
}
