package sandbox

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// maxMessage bounds one message between the runner and its helpers.
const maxMessage = 64 << 10

// sendMsg writes payload and fds as one SOCK_SEQPACKET message.
func sendMsg(sock *os.File, payload []byte, fds []int) error {
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	for {
		err := unix.Sendmsg(int(sock.Fd()), payload, oob, nil, 0)
		if err != unix.EINTR {
			return err
		}
	}
}

// recvMsg reads one message; received descriptors are close-on-exec. More
// than maxFds descriptors, or a truncated message, is an error (and every
// received descriptor is closed).
func recvMsg(sock *os.File, maxFds int) ([]byte, []*os.File, error) {
	buf := make([]byte, maxMessage)
	oob := make([]byte, unix.CmsgSpace(4*maxFds))
	// A socket with a receive timeout is not restarted after a signal
	// (socket(7)), and Go's runtime signals its own threads (preemption,
	// SIGCHLD of the helpers): EINTR means try again.
	var n, oobn, flags int
	var err error
	for {
		n, oobn, flags, _, err = unix.Recvmsg(int(sock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("recvmsg: %w", err)
	}
	var files []*os.File
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, nil, fmt.Errorf("parse control message: %w", err)
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "received"))
		}
	}
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 || len(files) > maxFds {
		closeAll(files)
		return nil, nil, errors.New("message from helper was truncated or carried too many descriptors")
	}
	return buf[:n], files, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

// seqpacketPair returns a connected pair of SOCK_SEQPACKET sockets, both
// close-on-exec (the child's end is passed explicitly through ExtraFiles).
func seqpacketPair() (parent, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "runner-sock"), os.NewFile(uintptr(fds[1]), "helper-sock"), nil
}

// fdPath returns the path the kernel holds for an open descriptor, refusing
// descriptors of deleted files.
func fdPath(f *os.File) (string, error) {
	p, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil {
		return "", err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return "", err
	}
	if st.Nlink == 0 || len(p) == 0 || p[0] != '/' {
		return "", fmt.Errorf("%q has been removed", p)
	}
	return p, nil
}
