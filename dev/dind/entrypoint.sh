#!/bin/sh
# Entry point of streamworker-dind: make this container's cgroups writable, then run "$@".
#
# `docker run --privileged` would mount them read-write, but it asks for every capability
# and some hosts (this project's CI VMs among them) have no CAP_SYS_RESOURCE to give, so
# the container runs with `--cap-add ALL --cap-drop SYS_RESOURCE` and unconfined seccomp,
# and remounts the cgroup hierarchies here (CAP_SYS_ADMIN suffices for that).
set -eu
mount -o remount,rw /sys/fs/cgroup 2>/dev/null || true
for dir in /sys/fs/cgroup/*/; do
  mount -o remount,rw,bind "$dir" 2>/dev/null || mount -o remount,rw "$dir" 2>/dev/null || true
done
# dockerd refuses to start when its root is not a shared mount it can propagate from.
mount --make-rshared / 2>/dev/null || true
exec "$@"
