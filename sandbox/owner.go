package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// SelfOwner names this process as "<pid> <start time>": the start time (in
// clock ticks since boot) tells a live owner from a recycled pid.
func SelfOwner() (string, error) {
	st, err := startTime(os.Getpid())
	if err != nil {
		return "", fmt.Errorf("read own start time: %w", err)
	}
	return fmt.Sprintf("%d %d", os.Getpid(), st), nil
}

// OwnerAlive reports whether the process an owner string names still runs.
func OwnerAlive(owner string) bool {
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

// newPrefix marks a run directory still being created.
const newPrefix = ".new-"

// NewRunDir creates root/<id> with its owner file (see SelfOwner) in place
// from the first moment: it is built as root/.new-<id> and renamed, so that
// the gc of a concurrent run never sees a run directory without an owner.
func NewRunDir(root, id, owner string) (string, error) {
	tmp := filepath.Join(root, newPrefix+id)
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return "", fmt.Errorf("create run dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "owner"), []byte(owner), 0o600); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	dir := filepath.Join(root, id)
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("create run dir: %w", err)
	}
	return dir, nil
}

// RunDirOwnerAlive reports whether the runner that created dir still runs.
func RunDirOwnerAlive(dir string) bool {
	data, err := os.ReadFile(filepath.Join(dir, "owner"))
	return err == nil && OwnerAlive(string(data))
}

// RemoveStaleNewDirs removes the run directories under root that a runner
// never finished creating (it died between mkdir and rename).
func RemoveStaleNewDirs(root string) error {
	entries, err := os.ReadDir(root)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	var errs []error
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), newPrefix+IDPrefix) {
			continue
		}
		p := filepath.Join(root, e.Name())
		if RunDirOwnerAlive(p) {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) < time.Minute {
			continue // its owner file may be on its way
		}
		if err := os.RemoveAll(p); err != nil { // nothing is ever mounted there
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
