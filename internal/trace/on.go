//go:build pitrace

package trace

import (
	"fmt"
	"os"
	"time"

	"github.com/sirupsen/logrus"
)

var start = time.Now()

func init() {
	logrus.SetLevel(logrus.DebugLevel)
	logrus.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true})
	logrus.AddHook(markHook{})
}

// markHook prefixes libcontainer's log lines with the trace clock.
type markHook struct{}

func (markHook) Levels() []logrus.Level { return logrus.AllLevels }
func (markHook) Fire(e *logrus.Entry) error {
	e.Message = fmt.Sprintf("%7.2f ms %s", float64(time.Since(start).Microseconds())/1000, e.Message)
	return nil
}

// LogLevel is what libcontainer's init is told to log at: debug.
const LogLevel = "5"

// Mark prints the time since the process started its Go code, and what
// was just done, to stderr.
func Mark(what string) {
	fmt.Fprintf(os.Stderr, "trace %7.2f ms %s\n", float64(time.Since(start).Microseconds())/1000, what)
}
