package seccomp

import (
	"runtime"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// nativeArches lists the seccomp architecture of the running Go binary. Only
// the native ABI is listed: a syscall made through another ABI (int 0x80, x32)
// meets the filter's bad-architecture action and fails, which closes the
// classic deny-list bypass through 32-bit syscall numbers. systemd's
// SystemCallArchitectures=native does the same for the other backend.
func nativeArches() []specs.Arch {
	switch runtime.GOARCH {
	case "amd64":
		return []specs.Arch{specs.ArchX86_64}
	case "arm64":
		return []specs.Arch{specs.ArchAARCH64}
	case "riscv64":
		return []specs.Arch{specs.ArchRISCV64}
	case "ppc64le":
		return []specs.Arch{specs.ArchPPC64LE}
	case "s390x":
		return []specs.Arch{specs.ArchS390X}
	}
	return nil
}

// OCI renders the policy as an OCI runtime-spec seccomp profile: allow by
// default, every rule an errno action.
func OCI() *specs.LinuxSeccomp {
	prof := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: nativeArches(),
	}
	for _, r := range Policy() {
		errno := uint(r.Errno)
		sc := specs.LinuxSyscall{
			Names:    append([]string(nil), r.Names...),
			Action:   specs.ActErrno,
			ErrnoRet: &errno,
		}
		for _, a := range r.Args {
			sc.Args = append(sc.Args, specs.LinuxSeccompArg{
				Index:    a.Index,
				Value:    a.Mask,
				ValueTwo: a.Value,
				Op:       specs.OpMaskedEqual,
			})
		}
		prof.Syscalls = append(prof.Syscalls, sc)
	}
	return prof
}
