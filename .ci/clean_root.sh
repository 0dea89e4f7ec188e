#!/usr/bin/env bash
# Runs a command of the README in a fresh, minimal Debian 12 root, so that a missing install step
# fails here instead of hiding behind packages a machine once got by hand:
#   .ci/clean_root.sh 'bash scripts/test.sh'
#   .ci/clean_root.sh --keep /tmp/root 'bash scripts/run_main.sh --epochs 2'
# The root is made by mmdebstrap (--variant=minbase: Essential packages and apt, nothing else),
# gets a clean clone of this checkout's HEAD at /work/main and a copy of ../shared at /work/shared,
# and the command runs there in a chroot with /proc, /sys, /dev/shm and /dev/pts mounted, as root, with CI
# passed through. The root is deleted afterwards unless --keep names where to leave it.
set -euo pipefail
cd "$(dirname "$0")/.."
keep=""
if [ "${1:-}" = "--keep" ]; then keep=$2; shift 2; fi
if [ $# -ne 1 ]; then echo "usage: .ci/clean_root.sh [--keep DIR] 'COMMAND'" >&2; exit 2; fi
cmd=$1
if [ "$(id -u)" != 0 ]; then echo "clean_root.sh: needs root (mmdebstrap, chroot, mount)" >&2; exit 2; fi
if ! command -v mmdebstrap >/dev/null; then
  echo "clean_root.sh: installing mmdebstrap"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
fi
shared=$(cd .. && pwd)/shared
[ -d "$shared" ] || { echo "clean_root.sh: $shared is missing (the datasets the tests read)" >&2; exit 2; }

root=${keep:-$(mktemp -d /tmp/harvit-clean-root.XXXXXX)}
rm -rf "$root"
cleanup() {
  for m in dev/pts dev/shm sys proc; do mountpoint -q "$root/$m" && umount -l "$root/$m"; done
  if [ -z "$keep" ]; then rm -rf "$root"; fi
}
trap cleanup EXIT

t0=$(date +%s)
echo "clean_root.sh: making a minimal Debian 12 root in $root"
mmdebstrap --quiet --variant=minbase bookworm "$root" \
  "deb http://deb.debian.org/debian bookworm main" \
  "deb http://deb.debian.org/debian bookworm-updates main" \
  "deb http://deb.debian.org/debian-security bookworm-security main"
echo "clean_root.sh: root ready in $(( $(date +%s) - t0 )) s ($(du -sh "$root" | cut -f1))"

mkdir -p "$root/work"
git clone --quiet --no-local --no-hardlinks . "$root/work/main"
git -C "$root/work/main" checkout --quiet --detach "$(git rev-parse HEAD)"
rm -rf "$root/work/main/.git"  # the project must not need git to build or test
mkdir -p "$root/work/shared"
cp -a "$shared/." "$root/work/shared/"  # the contents, also where ../shared is a symbolic link
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The machine's network setup, as a fresh machine here has it (like resolv.conf): extra CA
# certificates (an egress proxy's; the ca-certificates package merges them into the system bundle
# when deps.sh installs it) and npm's global config naming that bundle. Packages are not copied.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
fi
if [ -f /etc/npmrc ]; then cp /etc/npmrc "$root/etc/npmrc"; fi
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount -t tmpfs tmpfs "$root/dev/shm"
mkdir -p "$root/dev/pts" && mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"

echo "clean_root.sh: running '$cmd' in the clean root (commit $(git rev-parse --short HEAD))"
t1=$(date +%s)
set +e
chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/root LANG=C.UTF-8 CI="${CI:-}" TERM=dumb /bin/bash -c "cd /work/main && $cmd"
rc=$?
set -e
echo "clean_root.sh: '$cmd' ended with rc=$rc after $(( $(date +%s) - t1 )) s"
exit $rc
