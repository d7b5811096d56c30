# pi-agent build and test entry points. See README.md.
SHELL := /bin/bash

GO        ?= go
PREFIX    ?= /usr/local
LIBEXEC   ?= $(PREFIX)/libexec/pi-agent
# Absolute path of the runner the wrapper calls through sudo; the sudoers
# rule names exactly this path.
RUNNER_PATH ?= $(LIBEXEC)/pi-agent-runner
TAGS      := seccomp
export CGO_ENABLED := 1

.PHONY: all build test test-unit test-integration test-vm fuzz bench bench-trace bench-sync install clean

all: build

build: bin/pi bin/pi-agent-runner bin/pi-agent-helper

bin/pi-agent-runner: FORCE
	$(GO) build -buildvcs=false -tags '$(TAGS)' -trimpath -o $@ ./cmd/pi-agent-runner

# Static and small: it starts once per run as the caller, and as the
# sandbox's PID 1.
bin/pi-agent-helper: FORCE
	CGO_ENABLED=0 $(GO) build -buildvcs=false -trimpath -ldflags '-s -w' -o $@ ./cmd/pi-agent-helper

bin/pi: FORCE
	$(GO) build -buildvcs=false -trimpath -ldflags '-X main.runnerPath=$(RUNNER_PATH)' -o $@ ./cmd/pi

FORCE:

# summary prints the counts of passed, failed and skipped tests of a go test
# -v log, and every skip with its reason: a skip is never a silent pass.
define summary
echo "--- $(2) summary:"; \
  grep -E '^\s*--- (PASS|FAIL|SKIP)' $(1) | sed 's/^ *//' | awk '{print $$2}' | tr -d : | sort | uniq -c; \
  grep -B1 -E '^\s*--- SKIP' $(1) | grep -v -- '^--$$' || true
endef

# The README's test command: unit tests (no root), then the root suite.
test: test-unit test-integration

test-unit:
	$(GO) vet -tags '$(TAGS)' ./...
	@$(GO) test -tags '$(TAGS)' -count=1 -v ./... > unit.log 2>&1; \
	  status=$$?; \
	  grep -E '^(ok|FAIL|---)|^\s+--- FAIL|panic:' unit.log | grep -v -- '--- PASS' ; \
	  $(call summary,unit.log,unit); \
	  exit $$status

# Real containers, real sudo: needs root. Skipped cases are listed with
# their reason at the end, never counted as passes.
test-integration: build
	@$(GO) test -tags '$(TAGS) integration' -count=1 -v -timeout 20m ./integration/ 2>&1 | tee integration.log; \
	  status=$${PIPESTATUS[0]}; \
	  $(call summary,integration.log,integration); \
	  exit $$status

# The VM suite: systemd as PID 1, real sudo, both backends (integration/vm).
test-vm:
	bash integration/vm/run.sh

# New interesting inputs are minimized briefly (100 runs): the default of a
# minute per input would eat the whole budget (the fuzzer then shows 0 execs/s).
FUZZTIME ?= 10s
fuzz:
	@for t in FuzzParseDotenv FuzzMerge3 FuzzPlan FuzzDecodeHeader FuzzExcluded; do \
	  echo "fuzz $$t ($(FUZZTIME))"; \
	  $(GO) test -run XXX -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 100x ./merge/ || exit 1; \
	done

# Start-up next to runc, crun and bwrap; writes bench/RESULTS.md.
bench: build
	bash bench/run.sh

# The runner with phase marks on stderr (internal/trace), next to the
# helper it needs; for finding where a start spends its time.
bench-trace: build
	$(GO) build -buildvcs=false -tags '$(TAGS) pitrace' -trimpath -o bin/pi-agent-runner-trace ./cmd/pi-agent-runner

bench-sync: build
	$(GO) test -tags '$(TAGS) integration' -run XXX -bench 'SyncFirst|CpA' -benchtime 5x ./integration/
	$(GO) test -tags '$(TAGS) integration' -run XXX -bench 'SyncUnchanged' -benchtime 30x ./integration/

install: build
	install -d -m 0755 $(DESTDIR)$(LIBEXEC) $(DESTDIR)$(PREFIX)/bin
	install -m 0755 bin/pi-agent-runner $(DESTDIR)$(RUNNER_PATH)
	install -m 0755 bin/pi-agent-helper $(DESTDIR)$(dir $(RUNNER_PATH))pi-agent-helper
	install -m 0755 bin/pi $(DESTDIR)$(PREFIX)/bin/pi

clean:
	rm -rf bin integration.log unit.log
