package main

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// ptyCeiling moves size bytes through a new pseudo-terminal, written to
// the terminal end in its default (cooked) mode and read from the master,
// and returns the bytes per second.
func ptyCeiling(size int64) (float64, error) {
	master, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(master)
	if err := unix.IoctlSetPointerInt(master, unix.TIOCSPTLCK, 0); err != nil {
		return 0, err
	}
	n, err := unix.IoctlGetInt(master, unix.TIOCGPTN)
	if err != nil {
		return 0, err
	}
	term, err := unix.Open(fmt.Sprintf("/dev/pts/%d", n), unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	werr := make(chan error, 1)
	go func() {
		defer unix.Close(term)
		buf := make([]byte, 64<<10)
		for left := size; left > 0; {
			k, err := unix.Write(term, buf[:min(int64(len(buf)), left)])
			if err != nil {
				werr <- err
				return
			}
			left -= int64(k)
		}
		werr <- nil
	}()
	buf := make([]byte, 64<<10)
	start := time.Now()
	var got int64
	for got < size {
		k, err := unix.Read(master, buf)
		if err != nil || k == 0 {
			break
		}
		got += int64(k)
	}
	elapsed := time.Since(start)
	if err := <-werr; err != nil {
		return 0, err
	}
	if got < size {
		return 0, fmt.Errorf("pty: read %d of %d bytes", got, size)
	}
	return float64(got) / elapsed.Seconds(), nil
}
