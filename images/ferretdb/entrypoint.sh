#!/bin/sh
# Runs ferretdb with the image's settings (FERRETDB_* environment). mongod's `--bind_ip_all`, which
# the chart's mongodb Deployment passes, is dropped: this image already listens on 0.0.0.0.
for arg do
  shift
  [ "$arg" = "--bind_ip_all" ] || set -- "$@" "$arg"
done
exec /usr/local/bin/ferretdb "$@"
