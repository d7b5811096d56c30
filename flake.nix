{
  description = "pi-agent: the pi coding agent as a dedicated user, sandboxed in the current project";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (pkgs: rec {
        pi-agent = pkgs.callPackage ./nix/package.nix { };
        default = pi-agent;
      });

      nixosModules = {
        pi-agent =
          { pkgs, lib, ... }:
          {
            imports = [ ./nix/modules/nixos.nix ];
            m3ta.pi-agent.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
          };
        default = self.nixosModules.pi-agent;
      };

      homeManagerModules = {
        pi = ./nix/modules/home-manager.nix;
        default = self.homeManagerModules.pi;
      };

      checks = forAllSystems (pkgs: {
        package = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        vm = import ./nix/tests/vm.nix {
          inherit pkgs;
          module = self.nixosModules.default;
        };
      });

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = with pkgs; [
            go
            gopls
            pkg-config
            libseccomp
            tmux
          ];
        };
      });

      formatter = forAllSystems (pkgs: pkgs.nixfmt-rfc-style);
    };
}
