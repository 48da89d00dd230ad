#!/usr/bin/env bash
# The offline base image's root filesystem: Debian (debootstrap, minbase) with python3 and a venv
# at /opt/venv (first on PATH, so `python` and `pip` are the venv's, as in python:3.11-slim), the
# host's extra CA certificates (a re-signing egress proxy's CA) added through update-ca-certificates,
# and the usual container tweaks (no service starts from apt, no apt lists or .debs kept).
#   images/base/rootfs.sh SUITE MIRROR OUT.tar     (root; scripts/build-images.sh calls it)
# Its contents are part of the base image's cache key, so editing this file rebuilds the base.
set -euo pipefail
suite="$1" mirror="$2" out="$3"
packages="python3,python3-venv,python3-pip,ca-certificates"
host_bundle="${SRL_HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

root="$(mktemp -d "$(dirname "$out")/rootfs.XXXXXX")"
cleanup() {
  # debootstrap mounts /proc and /sys inside the target; never delete through a mount.
  local m
  for m in $(awk -v r="$root" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r); do
    umount -l "$m" || true
  done
  rm -rf --one-file-system "$root"
}
trap cleanup EXIT

debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >&2

# apt must not try to start services inside image builds (as in Debian's official images).
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"

# The host's trust store minus Debian's: what the host added (e.g. an egress proxy's CA).
mkdir -p "$root/usr/local/share/ca-certificates"
python3 - "$host_bundle" "$root/etc/ssl/certs/ca-certificates.crt" "$root/usr/local/share/ca-certificates" <<'PY'
import re, sys
pem = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
def certs(path):
    with open(path) as f:
        return pem.findall(f.read())
def norm(cert):
    return "".join(cert.split())
have = {norm(c) for c in certs(sys.argv[2])}
extra = [c for c in certs(sys.argv[1]) if norm(c) not in have]
for i, c in enumerate(extra):
    with open(f"{sys.argv[3]}/srl-host-{i}.crt", "w") as f:
        f.write(c + "\n")
print(f"rootfs: {len(extra)} host CA certificate(s) added", file=sys.stderr)
PY
chroot "$root" update-ca-certificates >&2

chroot "$root" python3 -m venv /opt/venv
ln -sf python3 "$root/usr/bin/python"

# Leave nothing host- or run-specific behind.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
       "$root"/var/log/* "$root"/tmp/* "$root"/root/.cache
: > "$root/etc/machine-id"
rm -f "$root/etc/hostname" "$root/etc/resolv.conf"

tar --numeric-owner -C "$root" -cf "$out.tmp" .
mv "$out.tmp" "$out"
