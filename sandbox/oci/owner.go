package oci

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// selfOwner names this process as "<pid> <start time>": the start time (in
// clock ticks since boot) tells a live owner from a recycled pid.
func selfOwner() (string, error) {
	st, err := startTime(os.Getpid())
	if err != nil {
		return "", fmt.Errorf("read own start time: %w", err)
	}
	return fmt.Sprintf("%d %d", os.Getpid(), st), nil
}

// ownerAlive reports whether the process an owner string names still runs.
func ownerAlive(owner string) bool {
	f := strings.Fields(owner)
	if len(f) != 2 {
		return false
	}
	pid, err1 := strconv.Atoi(f[0])
	want, err2 := strconv.ParseUint(f[1], 10, 64)
	if err1 != nil || err2 != nil || pid <= 0 {
		return false
	}
	got, err := startTime(pid)
	return err == nil && got == want
}

func startTime(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses; the
	// fields after the last ')' are fixed. Start time is field 22.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 20 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}
