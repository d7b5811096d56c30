{
  lib,
  buildGoModule,
  pkg-config,
  libseccomp,
}:

buildGoModule (finalAttrs: {
  pname = "pi-agent";
  version = "0.1.0";

  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../go.mod
      ../go.sum
      ../cmd
      ../sandbox
      ../rootfs
      ../seccomp
      ../merge
      ../reaper
    ];
  };

  # `go mod vendor` of go.mod/go.sum; update with the hash `nix build`
  # reports when the module graph changes.
  vendorHash = "sha256-K76YHDw4KM5gvRpRjJWoTvtNKy+Hi6VG+qXHE0I/WH0=";

  subPackages = [
    "cmd/pi"
    "cmd/pi-agent-runner"
    "cmd/pi-agent-helper"
  ];

  env.CGO_ENABLED = 1;
  tags = [ "seccomp" ];
  nativeBuildInputs = [ pkg-config ];
  buildInputs = [ libseccomp ];

  # The wrapper calls the runner by its absolute store path, which is what
  # the sudo rule names, and the setuid sudo of NixOS.
  ldflags = [
    "-s"
    "-w"
    "-X main.runnerPath=${placeholder "out"}/libexec/pi-agent/pi-agent-runner"
    "-X main.sudoPath=/run/wrappers/bin/sudo"
  ];

  # The runner lives in libexec: users reach it only through the wrapper
  # and the sudo rule, never on their PATH.
  postInstall = ''
    mkdir -p $out/libexec/pi-agent
    mv $out/bin/pi-agent-runner $out/bin/pi-agent-helper $out/libexec/pi-agent/
  '';

  # The unit tests run; the root tests (integration/, build tag
  # "integration") need root and real containers and run in the VM test.
  checkFlags = [ "-short" ];

  meta = {
    description = "Run the pi coding agent as a dedicated user in a sandbox that sees only the current project";
    homepage = "https://github.com/m3ta/pi-agent";
    license = lib.licenses.mit;
    mainProgram = "pi";
    platforms = lib.platforms.linux;
  };
})
