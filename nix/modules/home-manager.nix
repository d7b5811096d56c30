# Home Manager module coding.agents.pi: renders the user's pi config into
# ~/.pi/agent (as links into the Nix store, which the runner's config sync
# follows with the user's own rights).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    mkEnableOption
    mkIf
    mkOption
    literalExpression
    types
    ;

  cfg = config.coding.agents.pi;
  jsonFormat = pkgs.formats.json { };

  # What an agents input may provide, and where it lands.
  fromInput = name: lib.optionalAttrs (cfg.agentsInput != null && builtins.pathExists "${cfg.agentsInput}/${name}") {
    "${cfg.path}/${name}" = {
      source = "${cfg.agentsInput}/${name}";
      recursive = true;
    };
  };
in
{
  options.coding.agents.pi = {
    enable = mkEnableOption "the pi coding agent's configuration";

    agentsInput = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = literalExpression "inputs.agents";
      description = ''
        A flake input or path holding pi configuration: `AGENTS.md`,
        `skills/`, `prompts/`, `themes/`, `extensions/`. Whatever of these it
        has is linked into {option}`coding.agents.pi.path`.
      '';
    };

    path = mkOption {
      type = types.str;
      default = ".pi/agent";
      description = ''
        The pi config directory, relative to the home directory. Keep it
        equal to the system's `m3ta.pi-agent.wrapper.hostConfigPath` (or the
        user's `configPath`) so that the sandboxed agent gets it.
      '';
    };

    settings = mkOption {
      inherit (jsonFormat) type;
      default = { };
      example = {
        theme = "dark";
        defaultModel = "claude-sonnet-4-5";
      };
      description = "Written to `settings.json`. The system's managed settings override these keys.";
    };

    models = mkOption {
      inherit (jsonFormat) type;
      default = { };
      example = literalExpression ''
        {
          providers.ollama = {
            baseUrl = "http://localhost:11434/v1";
            api = "openai-completions";
            apiKey = "ollama";
            models = [ { id = "qwen2.5-coder:7b"; } ];
          };
        }
      '';
      description = "Written to `models.json` (custom providers and models).";
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = !(lib.hasPrefix "/" cfg.path) && !(lib.hasInfix ".." cfg.path);
        message = "coding.agents.pi.path must be relative to the home directory, without \"..\", not \"${cfg.path}\".";
      }
    ];

    home.file = lib.mkMerge [
      (lib.optionalAttrs (cfg.settings != { }) {
        "${cfg.path}/settings.json".source = jsonFormat.generate "pi-settings.json" cfg.settings;
      })
      (lib.optionalAttrs (cfg.models != { }) {
        "${cfg.path}/models.json".source = jsonFormat.generate "pi-models.json" cfg.models;
      })
      (lib.optionalAttrs (cfg.agentsInput != null && builtins.pathExists "${cfg.agentsInput}/AGENTS.md") {
        "${cfg.path}/AGENTS.md".source = "${cfg.agentsInput}/AGENTS.md";
      })
      (fromInput "skills")
      (fromInput "prompts")
      (fromInput "themes")
      (fromInput "extensions")
    ];
  };
}
