package oci

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/containerd/console"
	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"

	"github.com/m3ta/pi-agent/sandbox"
)

// ttyRelay gives the agent a new pseudo-terminal created inside the
// container and relays it to the caller's terminal, which is put in raw mode
// for the duration and restored on every exit path. The caller's terminal
// itself never enters the container (no TIOCSTI into the host's tty).
type ttyRelay struct {
	host     console.Console // the caller's terminal (stdin)
	stdio    sandbox.Stdio
	sock     *os.File // our end of the console socket
	peer     *os.File // libcontainer's end
	master   console.Console
	outDone  chan struct{}
	restored sync.Once
}

func newTTYRelay(proc *libcontainer.Process, stdio sandbox.Stdio) (*ttyRelay, error) {
	in, ok := stdio.In.(*os.File)
	if !ok {
		return nil, errors.New("terminal mode needs stdin to be a terminal")
	}
	host, err := console.ConsoleFromFile(in)
	if err != nil {
		return nil, fmt.Errorf("terminal mode: %w", err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	t := &ttyRelay{
		host: host, stdio: stdio,
		sock:    os.NewFile(uintptr(fds[0]), "console-parent"),
		peer:    os.NewFile(uintptr(fds[1]), "console-child"),
		outDone: make(chan struct{}),
	}
	if ws, err := host.Size(); err == nil {
		proc.ConsoleWidth, proc.ConsoleHeight = ws.Width, ws.Height
	}
	proc.ConsoleSocket = t.peer
	return t, nil
}

// Start receives the pty master from the container, switches the caller's
// terminal to raw mode and starts copying.
func (t *ttyRelay) Start() error {
	t.peer.Close()
	t.peer = nil
	master, err := recvFile(t.sock)
	if err != nil {
		return fmt.Errorf("receive pty from container: %w", err)
	}
	t.master, err = console.ConsoleFromFile(master)
	if err != nil {
		master.Close()
		return fmt.Errorf("pty from container: %w", err)
	}
	if err := t.host.SetRaw(); err != nil {
		return fmt.Errorf("set terminal raw: %w", err)
	}
	t.Resize()
	go func() { _, _ = io.Copy(t.master, t.stdio.In) }()
	go func() {
		defer close(t.outDone)
		_, _ = io.Copy(t.stdio.Out, t.master)
	}()
	return nil
}

// Resize copies the caller's window size to the agent's terminal.
func (t *ttyRelay) Resize() {
	if t.master == nil {
		return
	}
	if ws, err := t.host.Size(); err == nil {
		_ = t.master.Resize(ws)
	}
}

// Drain waits for the agent's last output once the container is gone (the
// master then reads EIO), bounded in case a descriptor lingers.
func (t *ttyRelay) Drain() {
	if t.master == nil {
		return
	}
	select {
	case <-t.outDone:
	case <-time.After(2 * time.Second):
	}
}

// Close restores the caller's terminal and releases the pty.
func (t *ttyRelay) Close() error {
	t.restored.Do(func() { _ = t.host.Reset() })
	if t.peer != nil {
		t.peer.Close()
	}
	t.sock.Close()
	if t.master != nil {
		t.master.Close()
	}
	return nil
}

// recvFile receives the single descriptor libcontainer sends on the console
// socket.
func recvFile(sock *os.File) (*os.File, error) {
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, errors.New("no descriptor received")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, errors.New("expected exactly one descriptor")
	}
	return os.NewFile(uintptr(fds[0]), "pty-master"), nil
}
