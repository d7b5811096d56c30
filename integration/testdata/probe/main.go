// Command probe attempts one forbidden operation inside the sandbox and
// prints the outcome: "OK" when the operation succeeded, else the errno name.
// Tests assert the exact outcome; built statically so it runs anywhere.
package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: probe OPERATION")
		os.Exit(2)
	}
	err := attempt(os.Args[1])
	if err == nil {
		fmt.Println("OK")
		return
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		fmt.Println(unix.ErrnoName(errno))
		return
	}
	fmt.Println("ERROR", err)
}

func attempt(op string) error {
	switch op {
	case "mount":
		return unix.Mount("tmpfs", "/tmp", "tmpfs", 0, "")
	case "umount":
		return unix.Unmount("/proc", unix.MNT_DETACH)
	case "unshare-user":
		return unix.Unshare(unix.CLONE_NEWUSER)
	case "unshare-mount":
		return unix.Unshare(unix.CLONE_NEWNS)
	case "clone-newuser":
		pid, _, e := unix.RawSyscall6(unix.SYS_CLONE, uintptr(unix.CLONE_NEWUSER|unix.SIGCHLD), 0, 0, 0, 0, 0)
		if e != 0 {
			return e
		}
		if pid == 0 {
			unix.Exit(0)
		}
		return nil
	case "setns":
		f, err := os.Open("/proc/1/ns/mnt")
		if err != nil {
			return err
		}
		return unix.Setns(int(f.Fd()), 0)
	case "ptrace":
		return unix.PtraceAttach(1)
	case "keyctl":
		_, err := unix.KeyctlJoinSessionKeyring("probe")
		return err
	case "bpf":
		_, _, e := unix.Syscall(unix.SYS_BPF, 0, 0, 0)
		return errnoOrNil(e)
	case "perf_event_open":
		attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_SOFTWARE, Config: unix.PERF_COUNT_SW_CPU_CLOCK}
		_, err := unix.PerfEventOpen(&attr, 0, -1, -1, 0)
		return err
	case "open_by_handle_at":
		h := unix.NewFileHandle(1, []byte{2, 0, 0, 0, 0, 0, 0, 0})
		_, err := unix.OpenByHandleAt(unix.AT_FDCWD, h, unix.O_RDONLY)
		return err
	case "tiocsti":
		c := byte('x')
		_, _, e := unix.Syscall(unix.SYS_IOCTL, 0, unix.TIOCSTI, uintptr(unsafe.Pointer(&c)))
		return errnoOrNil(e)
	case "pivot_root":
		return unix.PivotRoot("/tmp", "/tmp")
	case "kexec_load":
		_, _, e := unix.Syscall6(unix.SYS_KEXEC_LOAD, 0, 0, 0, 0, 0, 0)
		return errnoOrNil(e)
	case "init_module":
		return unix.InitModule(nil, "")
	case "io_uring_setup":
		_, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, 0, 0)
		return errnoOrNil(e)
	case "alloc":
		// Allocate and touch MiB of memory: the cgroup limit must stop it.
		n, _ := strconv.Atoi(os.Args[2])
		var keep [][]byte
		for i := 0; i < n; i++ {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1
			}
			keep = append(keep, b)
		}
		_ = keep
		return nil
	case "write":
		f, err := os.OpenFile(os.Args[2], os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = f.Write([]byte("pwned\n"))
		return err
	case "read":
		// Reports only whether the read worked, never the content.
		_, err := os.ReadFile(os.Args[2])
		return err
	case "kill":
		pid, _ := strconv.Atoi(os.Args[2])
		return unix.Kill(pid, unix.SIGKILL)
	case "fds":
		// Prints the descriptors open in this process beyond stdio.
		entries, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			return err
		}
		n := 0
		for _, e := range entries {
			if fd, _ := strconv.Atoi(e.Name()); fd > 2 {
				n++
			}
		}
		fmt.Println("extra fds:", n-1) // minus the one ReadDir used
		return nil
	case "setuid0":
		return unix.Setuid(0)
	case "chroot":
		return unix.Chroot("/tmp")
	case "mknod":
		return unix.Mknod("/tmp/sda", unix.S_IFBLK|0o600, int(unix.Mkdev(8, 0)))
	case "sethostname":
		return unix.Sethostname([]byte("pwned"))
	case "rawsocket":
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err == nil {
			unix.Close(fd)
		}
		return err
	case "reboot":
		return unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF)
	case "iopl":
		_, _, e := unix.Syscall(unix.SYS_IOPL, 3, 0, 0)
		return errnoOrNil(e)
	case "userfaultfd":
		_, _, e := unix.Syscall(unix.SYS_USERFAULTFD, 0, 0, 0)
		return errnoOrNil(e)
	case "chown-root":
		// Give a file away to root: must fail for an unprivileged agent.
		return unix.Chown(os.Args[2], 0, 0)
	}
	return fmt.Errorf("unknown operation %q", op)
}

func errnoOrNil(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}
