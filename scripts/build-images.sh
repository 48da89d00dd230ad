#!/usr/bin/env bash
# Build the e2e tier's images offline (images/e2e-images.json: runtime, operator, redis, ferretdb)
# from a debootstrapped Debian base, with a private dockerd, and `docker save` each one to
# $SRL_E2E_CACHE/images/<name>.tar, listed in $SRL_E2E_CACHE/images/manifest.json for the node to
# import. Idempotent: an image is rebuilt only when its inputs change (scripts/build_images.py), and
# a run where nothing changed starts no dockerd. Cache: ${SRL_E2E_CACHE:-$HOME/.cache/srl-e2e}.
#   scripts/build-images.sh
# Environment: SRL_E2E_DISK_GB (default 20) disk the whole e2e tier needs under the cache;
# SRL_DEBIAN_MIRROR overrides the Debian mirror (default: the one this host's apt uses).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "$(id -u)" -ne 0 ]; then
  echo "build-images: needs root (debootstrap, dockerd); run it as root or through sudo" >&2
  exit 2
fi
CACHE="${SRL_E2E_CACHE:-$HOME/.cache/srl-e2e}"
export SRL_E2E_CACHE="$CACHE"
python="${SRL_PYTHON:-python3}"
mkdir -p "$CACHE"

# One run at a time per cache (bounded wait).
exec 9>"$CACHE/.build-images.lock"
if ! flock -w 1800 9; then
  echo "build-images: another build holds $CACHE/.build-images.lock for over 30 min" >&2
  exit 2
fi

"$repo/scripts/install-e2e-packages.sh"
"$repo/scripts/install-test-servers.sh"  # the ferretdb binary the ferretdb image copies

t_start=$(date +%s)
rc=0
"$python" "$repo/scripts/build_images.py" plan || rc=$?
if [ "$rc" -eq 0 ]; then
  echo "build-images: all images current ($(( $(date +%s) - t_start )) s)"
  exit 0
elif [ "$rc" -ne 3 ]; then
  exit "$rc"
fi

# ---- disk: what the tier needs minus what the cache already holds
need_gb="${SRL_E2E_DISK_GB:-20}"
used_kb=$(du -sxk "$CACHE" 2>/dev/null | cut -f1)
free_kb=$(df -Pk "$CACHE" | awk 'NR == 2 {print $4}')
want_kb=$(( need_gb * 1024 * 1024 - used_kb ))
if [ "$free_kb" -lt "$want_kb" ]; then
  awk -v f="$free_kb" -v u="$used_kb" -v w="$want_kb" -v n="$need_gb" -v c="$CACHE" \
      -v m="$(df -P "$CACHE" | awk 'NR == 2 {print $6}')" 'BEGIN {
    printf "build-images: not enough disk: %.1f GB free on %s (the filesystem of %s); the e2e tier needs %s GB, the cache holds %.1f GB, so %.1f GB must be free\n", f / 1048576, m, c, n, u / 1048576, w / 1048576 }' >&2
  exit 2
fi

# ---- a private dockerd: own data root, exec root, pidfile, socket and (empty) config; no host
# networking changes (no iptables, no NAT, no bridge, no ip_forward). Builds use --network host.
dock="$CACHE/docker"
mkdir -p "$dock/data" "$dock/exec"
[ -f "$dock/daemon.json" ] || echo '{}' > "$dock/daemon.json"
sock="$dock/docker.sock"
pidfile="$dock/dockerd.pid"
export DOCKER_HOST="unix://$sock"
# dockerd leaves its exec root's netns/default bind mount (and, killed, overlay mounts) behind.
unmount_leftovers() {
  local m
  for m in $(awk -v d="$dock/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" || true
  done
}
# A dockerd of an earlier, killed run of this script (same pidfile, same data root): stop it.
if [ -f "$pidfile" ]; then
  old=$(cat "$pidfile")
  if [ -n "$old" ] && tr '\0' ' ' < "/proc/$old/cmdline" 2>/dev/null | grep -- "--data-root $dock/data" >/dev/null; then
    echo "build-images: stopping dockerd $old left by an earlier run" >&2
    kill "$old" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$old" 2>/dev/null || break; sleep 0.5; done
  fi
  rm -f "$pidfile"
fi
unmount_leftovers
dockerd_pid=""
stop_dockerd() {
  [ -n "$dockerd_pid" ] || return 0
  kill "$dockerd_pid" 2>/dev/null || true
  for _ in $(seq 60); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$dockerd_pid" 2>/dev/null; then kill -9 "$dockerd_pid" 2>/dev/null || true; fi
  wait "$dockerd_pid" 2>/dev/null || true
  dockerd_pid=""
  unmount_leftovers
}
trap stop_dockerd EXIT
trap 'exit 130' INT TERM
dockerd --iptables=false --ip-masq=false --ip-forward=false --bridge=none \
  --data-root "$dock/data" --exec-root "$dock/exec" --pidfile "$pidfile" \
  --config-file "$dock/daemon.json" --host "$DOCKER_HOST" \
  > "$dock/dockerd.log" 2>&1 9>&- &
dockerd_pid=$!
for _ in $(seq 120); do
  if docker version >/dev/null 2>&1; then break; fi
  if ! kill -0 "$dockerd_pid" 2>/dev/null; then
    echo "build-images: dockerd exited; its log ($dock/dockerd.log):" >&2
    tail -n 20 "$dock/dockerd.log" >&2
    dockerd_pid=""
    exit 2
  fi
  sleep 0.5
done
if ! docker version >/dev/null 2>&1; then
  echo "build-images: dockerd did not answer on $sock within 60 s ($dock/dockerd.log)" >&2
  exit 2
fi

"$python" "$repo/scripts/build_images.py" build
echo "build-images: done in $(( $(date +%s) - t_start )) s; cache $(du -sxh "$CACHE" | cut -f1) at $CACHE"
