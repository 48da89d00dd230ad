#!/usr/bin/env bash
# Debian packages the e2e (real pod) tier needs on the host: the Docker engine (image builds),
# containerd + runc (the node's container runtime), the CNI plugins (pod networking), debootstrap
# (the offline base image), iptables and conntrack (kube-proxy). Idempotent: apt runs only when a
# command is missing.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }
have dockerd || need+=(docker.io)
have containerd || need+=(containerd)
have runc || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
have debootstrap || need+=(debootstrap)
have iptables || need+=(iptables)
have conntrack || need+=(conntrack)
if [ "${#need[@]}" -gt 0 ]; then
  echo "install-e2e-packages: installing ${need[*]} (apt)" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
