package sandbox

import (
	"fmt"
	"log/syslog"
	"os"
	"strconv"
	"time"
)

// AuditLog is where Audit appends when no syslog socket is available.
var AuditLog = "/run/pi-agent/audit.log"

// AuditLine formats the one line a run leaves: who, where, backend, id,
// exit status, duration. Paths are quoted so a newline in a directory name
// cannot forge a second line.
func AuditLine(p *Plan, backend string, code int, err error, d time.Duration) string {
	status := strconv.Itoa(code)
	if err != nil {
		status = "error " + strconv.Quote(err.Error())
	}
	return fmt.Sprintf("user=%s uid=%d project=%s cwd=%s backend=%s id=%s exit=%s duration=%s",
		p.Caller.Name, p.Caller.UID, strconv.Quote(p.Project), strconv.Quote(p.Cwd), backend, p.ID, status, d.Round(time.Millisecond))
}

// Audit records a run in syslog (the journal on systemd hosts), or in
// AuditLog when there is no syslog socket. Failure to log never fails a run.
func Audit(p *Plan, backend string, code int, err error, d time.Duration) {
	line := AuditLine(p, backend, code, err, d)
	if w, err := syslog.New(syslog.LOG_AUTHPRIV|syslog.LOG_INFO, "pi-agent-runner"); err == nil {
		_ = w.Info(line)
		_ = w.Close()
		return
	}
	f, err := os.OpenFile(AuditLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s %s\n", time.Now().UTC().Format(time.RFC3339), line)
}
