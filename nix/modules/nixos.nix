# NixOS module m3ta.pi-agent: the pi coding agent, run as a dedicated user in
# a sandbox that sees only the current project, through a `pi` wrapper and
# one narrowly scoped sudo rule.
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

  cfg = config.m3ta.pi-agent;
  jsonFormat = pkgs.formats.json { };

  runner = "${cfg.package}/libexec/pi-agent/pi-agent-runner";

  # The tools on the agent's PATH inside the sandbox.
  agentPath = pkgs.buildEnv {
    name = "pi-agent-path";
    paths = [ cfg.agentPackage ] ++ cfg.packages;
    pathsToLink = [ "/bin" ];
  };

  configFile = jsonFormat.generate "pi-agent-config.json" (
    import ../lib/render.nix {
      inherit cfg;
      agentCommand = [ (lib.getExe cfg.agentPackage) ];
      agentPath = "${agentPath}/bin";
    }
  );

  wrapper = pkgs.runCommand "pi-agent-wrapper-${cfg.wrapper.commandName}" { } ''
    mkdir -p $out/bin
    ln -s ${lib.getExe' cfg.package "pi"} $out/bin/${cfg.wrapper.commandName}
  '';

  # NOPASSWD for the runner's absolute store path, for the host users only.
  # Never ALL: the runner is the only thing they may run as root, and it
  # refuses every trust flag when called through sudo.
  sudoRules = [
    {
      users = lib.attrNames cfg.hostUsers;
      commands = [
        {
          command = runner;
          options = [ "NOPASSWD" ];
        }
      ];
    }
  ];

  hostUserModule = {
    options = {
      projectRoots = mkOption {
        type = types.listOf types.str;
        example = [
          "~/p"
          "/srv/code"
        ];
        description = ''
          Directories in which this user may run the agent: absolute paths,
          or paths starting with `~` (the user's home from the passwd
          database). The sandbox mounts the root that contains the working
          directory (or only its git work tree, see `sandbox.projectScope`).
        '';
      };
      configPath = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = ".config/pi";
        description = ''
          The user's pi config directory, relative to their home, synced into
          the agent's runtime at every run. `null` means
          {option}`m3ta.pi-agent.wrapper.hostConfigPath`.
        '';
      };
    };
  };
in
{
  options.m3ta.pi-agent = {
    enable = mkEnableOption "the sandboxed pi coding agent";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ../package.nix { };
      defaultText = literalExpression "pkgs.callPackage ./nix/package.nix { }";
      description = "The pi-agent package (the `pi` wrapper and the runner).";
    };

    agentPackage = mkOption {
      type = types.package;
      example = literalExpression "pkgs.pi-coding-agent";
      description = ''
        The pi coding agent (`@earendil-works/pi-coding-agent`) that runs
        inside the sandbox. Its main program is the agent's command.
      '';
    };

    packages = mkOption {
      type = types.listOf types.package;
      default = with pkgs; [
        bash
        coreutils
        findutils
        gnugrep
        gnused
        gawk
        gnutar
        gzip
        diffutils
        which
        git
        ripgrep
        fd
      ];
      defaultText = literalExpression ''
        with pkgs; [ bash coreutils findutils gnugrep gnused gawk gnutar gzip diffutils which git ripgrep fd ]
      '';
      description = "Tools on the agent's `PATH` inside the sandbox.";
    };

    user = mkOption {
      type = types.str;
      default = "pi-agent";
      description = "The dedicated system user the agent runs as; created by this module.";
    };

    group = mkOption {
      type = types.str;
      default = "pi-agent";
      description = "The group of {option}`m3ta.pi-agent.user`; created by this module.";
    };

    stateDir = mkOption {
      type = types.str;
      default = "/var/lib/pi-agent";
      description = ''
        Where the agent's runtime lives: `<stateDir>/users/<name>/agent` is
        the synced copy of each user's pi config that the agent sees as
        `~/.pi/agent`. Owned by root.
      '';
    };

    backend = mkOption {
      type = types.enum [
        "oci"
        "systemd"
        "auto"
      ];
      default = "oci";
      description = ''
        The sandbox: `oci`, a container built with runc's libcontainer;
        `systemd`, a hardened transient `systemd-run` unit (compatibility);
        `auto`, oci where the kernel offers what it needs, else systemd.
        Users may choose per run with `pi --backend=…`.
      '';
    };

    hostUsers = mkOption {
      type = types.attrsOf (types.submodule hostUserModule);
      default = { };
      example = literalExpression ''
        { m3tam3re.projectRoots = [ "~/p" ]; }
      '';
      description = ''
        The users allowed to run the agent, each with the directories they
        may run it in. Each gets a sudo rule for the runner only.
      '';
    };

    settings = mkOption {
      inherit (jsonFormat) type;
      default = { };
      example = {
        defaultProvider = "anthropic";
        defaultModel = "claude-sonnet-4-5";
      };
      description = ''
        pi settings merged over each user's `settings.json`; these keys
        always win. Stored in the Nix store: no secrets here.
      '';
    };

    environment = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = {
        ANTHROPIC_BASE_URL = "https://llm-proxy.internal";
      };
      description = ''
        Environment of the agent, over each user's `.env`. Stored in the Nix
        store: put secrets in {option}`m3ta.pi-agent.environmentFiles`.
      '';
    };

    environmentFiles = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "/run/secrets/pi-agent.env" ];
      description = ''
        dotenv files read by the runner (as root) at every run, applied after
        {option}`m3ta.pi-agent.environment`, later files winning. A path
        starting with `-` may be missing.
      '';
    };

    wrapper = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = "Whether to install the `pi` wrapper for all users.";
      };
      commandName = mkOption {
        type = types.str;
        default = "pi";
        description = "Name of the wrapper command.";
      };
      hideDirectBinary = mkOption {
        type = types.bool;
        default = true;
        description = ''
          Keep the agent package's own `pi` off users' `PATH`, so that `pi`
          always means the sandboxed agent.
        '';
      };
      hostConfigPath = mkOption {
        type = types.str;
        default = ".pi/agent";
        description = "Default pi config directory of host users, relative to their home.";
      };
    };

    sandbox = {
      readOnlyPaths = mkOption {
        type = types.nullOr (types.listOf types.str);
        default = null;
        example = [
          "/nix/store"
          "/etc/ssl"
          "/etc/resolv.conf"
        ];
        description = ''
          Host paths shown read-only inside. `null`: the runner's built-in
          list, which covers NixOS (`/nix/store`, `/etc/static`, `/etc/ssl`,
          `/etc/resolv.conf`, …) and skips what a host lacks.
        '';
      };
      network = mkOption {
        type = types.enum [
          "host"
          "none"
        ];
        default = "host";
        description = "`host` shares the network (the agent calls an LLM API); `none` leaves only loopback.";
      };
      memoryMax = mkOption {
        type = types.str;
        default = "8G";
        description = "cgroup memory limit of a session (K, M, G, T suffixes, or `infinity`).";
      };
      pidsMax = mkOption {
        type = types.ints.positive;
        default = 4096;
        description = "cgroup limit on the tasks of a session.";
      };
      tmpSize = mkOption {
        type = types.str;
        default = "2G";
        description = "Size of the sandbox's `/tmp`.";
      };
      projectScope = mkOption {
        type = types.enum [
          "root"
          "project"
        ];
        default = "root";
        description = ''
          `root`: mount the whole allowlisted root that contains the working
          directory; `project`: only the git work tree that contains it.
        '';
      };
    };

    sync = {
      exclude = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "/extensions/cache" ];
        description = ''
          Paths of the pi config that are the runtime's own (never synced,
          never deleted), besides `/sessions`, `/bin`, `/.cache` and `*.lock`.
        '';
      };
      maxFileSize = mkOption {
        type = types.str;
        default = "64M";
        description = "Largest file the config sync copies.";
      };
      maxTotalSize = mkOption {
        type = types.str;
        default = "512M";
        description = "Largest config the sync copies.";
      };
      maxEntries = mkOption {
        type = types.ints.positive;
        default = 100000;
        description = "Most files and directories the config sync copies.";
      };
    };
  };

  config = mkIf cfg.enable {
    assertions =
      [
        {
          assertion = lib.hasPrefix "/" cfg.stateDir && cfg.stateDir != "/";
          message = "m3ta.pi-agent.stateDir must be an absolute path other than /, not \"${cfg.stateDir}\".";
        }
        {
          assertion = cfg.wrapper.hideDirectBinary || cfg.wrapper.commandName != (cfg.agentPackage.meta.mainProgram or "pi");
          message = ''
            m3ta.pi-agent.wrapper.commandName "${cfg.wrapper.commandName}" is also the agent's own binary,
            which wrapper.hideDirectBinary = false puts on PATH: choose another commandName, or hide the binary.
          '';
        }
      ]
      ++ lib.concatLists (
        lib.mapAttrsToList (name: u: [
          {
            assertion = config.users.users ? ${name};
            message = "m3ta.pi-agent.hostUsers.${name}: there is no such user in users.users.";
          }
          {
            assertion = u.projectRoots != [ ];
            message = "m3ta.pi-agent.hostUsers.${name}.projectRoots is empty: list the directories ${name} may run the agent in.";
          }
          {
            assertion = name != "root" && name != cfg.user;
            message = "m3ta.pi-agent.hostUsers.${name}: the agent never runs on behalf of root or of its own user.";
          }
        ]) cfg.hostUsers
      );

    users.users.${cfg.user} = {
      isSystemUser = true;
      inherit (cfg) group;
      description = "pi coding agent";
      home = "/var/empty";
    };
    users.groups.${cfg.group} = { };

    systemd.tmpfiles.settings."10-pi-agent" = {
      ${cfg.stateDir}.d = {
        mode = "0755";
        user = "root";
        group = "root";
      };
      "${cfg.stateDir}/users".d = {
        mode = "0755";
        user = "root";
        group = "root";
      };
    };

    environment.etc."pi-agent/config.json".source = configFile;

    environment.systemPackages =
      lib.optional cfg.wrapper.enable wrapper
      ++ lib.optional (!cfg.wrapper.hideDirectBinary) cfg.agentPackage;

    security.sudo.extraRules = mkIf config.security.sudo.enable sudoRules;
    security.sudo-rs.extraRules = mkIf config.security.sudo-rs.enable sudoRules;
  };

  meta.maintainers = [ ];
}
