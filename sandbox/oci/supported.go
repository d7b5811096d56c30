package oci

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Supported reports whether this kernel offers what the oci backend needs:
// idmapped mounts (5.12), seccomp filters and a cgroup file system.
func Supported() error {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return err
	}
	release := unix.ByteSliceToString(u.Release[:])
	major, minor := kernelVersion(release)
	if major < 5 || (major == 5 && minor < 12) {
		return fmt.Errorf("kernel %s has no idmapped mounts (5.12 or later needed)", release)
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil || !strings.Contains(string(status), "\nSeccomp:") {
		return errors.New("the kernel has no seccomp support")
	}
	if _, err := os.Stat("/sys/fs/cgroup"); err != nil {
		return errors.New("no cgroup file system at /sys/fs/cgroup")
	}
	return nil
}

func kernelVersion(release string) (major, minor int) {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return 0, 0
	}
	major, _ = strconv.Atoi(parts[0])
	minor, _ = strconv.Atoi(strings.TrimFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	return major, minor
}
