#!/usr/bin/env bash
# nnofi-base:bookworm without any registry: debootstrap a minbase bookworm,
# install docker/packages.txt in a chroot, then `docker import` the tree.
#
#   docker/build-base.sh IMAGE RECIPE      (run by build-images.sh, as root)
#
# Kept under build/lab/ (git-ignored) so that a rebuild is fast:
#   debootstrap-bookworm.tgz  minbase .debs (debootstrap --make-tarball), fetched once
#   apt-archives/             .debs of packages.txt, bind-mounted as the chroot's apt cache
#   rootfs/ + rootfs.recipe   the finished tree and the recipe it was made from: when the
#                             image is gone but the recipe is unchanged, only import again
set -euo pipefail

image=$1 recipe=$2
here=$(cd "$(dirname "$0")" && pwd)
lab=$(mkdir -p "$here/../build/lab" && cd "$here/../build/lab" && pwd)
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
rootfs=$lab/rootfs
tarball=$lab/debootstrap-bookworm.tgz
archives=$lab/apt-archives

[ "$(id -u)" = 0 ] || { echo "build-base.sh: needs root (debootstrap, chroot, mount)" >&2; exit 1; }
if ! command -v debootstrap >/dev/null; then
    echo "build-base.sh: installing debootstrap (needed for the offline base image)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

# Unmount whatever this script mounted in the chroot, also on failure or ^C.
# (--one-file-system on every rm below: never delete through a leftover mount.)
unmount_all() {
    grep -o " $rootfs/[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m"; done || true
}
trap unmount_all EXIT

if [ "$(cat "$lab/rootfs.recipe" 2>/dev/null)" != "$recipe" ]; then
    unmount_all
    rm -rf --one-file-system "$rootfs" "$lab/rootfs.recipe"
    if [ ! -f "$tarball" ]; then
        rm -rf --one-file-system "$lab/tarball-work"
        debootstrap --variant=minbase --make-tarball="$tarball" bookworm "$lab/tarball-work" "$mirror"
        rm -rf --one-file-system "$lab/tarball-work"
    fi
    debootstrap --variant=minbase --unpack-tarball="$tarball" bookworm "$rootfs" "$mirror"

    # Same suites as the host (updates + security), so the image gets the fixes too.
    cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
SOURCES
    # No daemon may start inside the chroot (openssh-server's postinst would try).
    printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
    chmod +x "$rootfs/usr/sbin/policy-rc.d"
    cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
    mkdir -p "$archives" "$rootfs/var/cache/apt/archives"
    mount -t proc proc "$rootfs/proc"
    mount --bind "$archives" "$rootfs/var/cache/apt/archives"

    packages=$(sed 's/#.*//' "$here/packages.txt" | xargs)
    chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        DEBIAN_FRONTEND=noninteractive LC_ALL=C /bin/sh -ec "
        apt-get update -qq
        apt-get upgrade -y -qq
        apt-get install -y -qq --no-install-recommends $packages
    " >"$lab/base-chroot.log" 2>&1 || { tail -30 "$lab/base-chroot.log" >&2; exit 1; }
    unmount_all

    # Small image, like debian:*-slim: no apt lists, caches, logs, man pages,
    # translations or docs (but the copyright files); no host keys of this
    # build (the node image makes its own) and no machine id.
    (cd "$rootfs" && rm -rf --one-file-system usr/sbin/policy-rc.d var/lib/apt/lists/* \
        var/cache/apt/*.bin var/cache/apt/archives/*.deb var/cache/debconf/*-old \
        var/log/*.log var/log/apt/* usr/share/man/* usr/share/info/* \
        etc/ssh/ssh_host_* tmp/* root/.cache &&
        find usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + &&
        find usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete)
    : >"$rootfs/etc/resolv.conf"
    : >"$rootfs/etc/machine-id"
    echo "$recipe" >"$lab/rootfs.recipe"
fi

tar -C "$rootfs" --numeric-owner -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "LABEL org.nnofi.recipe=$recipe org.nnofi.base=debootstrap" \
    --change 'CMD ["/bin/bash"]' \
    - "$image" >/dev/null
