//go:build !pitrace

// Package trace marks the phases of the start path for `make bench-trace`.
// Without the pitrace build tag, Mark does nothing and is inlined away.
package trace

// Mark records that the phase named what has just ended.
func Mark(what string) {}

// LogLevel is what libcontainer's init is told to log at: nothing extra.
const LogLevel = ""
