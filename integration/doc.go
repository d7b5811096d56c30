// Package integration holds the tests that need root: real containers, real
// users, real sudo. They are built only with the "integration" tag (make
// test-integration) and are never needed for `go test ./...`.
package integration
