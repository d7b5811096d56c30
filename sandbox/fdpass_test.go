package sandbox

import (
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The runner's end of the caller socket has a receive timeout, which makes
// a signal interrupt a waiting recvmsg with EINTR instead of restarting it
// (socket(7)); Go's runtime signals its threads all the time. A message
// that arrives while signals rain must still be received.
func TestRecvMsgSurvivesSignals(t *testing.T) {
	runner, helper, err := CallerSocket()
	if err != nil {
		t.Fatal(err)
	}
	defer runner.Close()
	defer helper.Close()

	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				// SIGURG is Go's own preemption signal: harmless to send.
				_ = syscall.Kill(os.Getpid(), syscall.SIGURG)
				time.Sleep(100 * time.Microsecond)
			}
		}
	}()
	go func() {
		time.Sleep(200 * time.Millisecond)
		f, _ := os.Open("/")
		defer f.Close()
		_ = sendMsg(helper, []byte("answer"), []int{int(f.Fd())})
	}()
	payload, files, err := recvMsg(runner, 1)
	if err != nil {
		t.Fatalf("recvmsg under signals: %v", err)
	}
	defer closeAll(files)
	if string(payload) != "answer" || len(files) != 1 {
		t.Fatalf("got %q with %d descriptors", payload, len(files))
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(files[0].Fd()), &st); err != nil || st.Ino != rootIno(t) {
		t.Errorf("the descriptor is not the one sent: %v", err)
	}
}

func rootIno(t *testing.T) uint64 {
	var st unix.Stat_t
	if err := unix.Stat("/", &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}
