#!/usr/bin/env bash
# Build the lab's images, skipping what is already done; one line per image.
#
#   nnofi-base:bookworm  labelled org.nnofi.recipe=<hash of its recipe>; skipped when
#                        an image with that label exists.
#                        NNOFI_BASE=debootstrap (default): docker/build-base.sh, no registry.
#                        NNOFI_BASE=registry: docker/Dockerfile.base-registry,
#                        FROM debian:bookworm-slim (needs a registry; untested here).
#   nnofi-node:latest    docker/Dockerfile.node on the working tree; docker's layer
#                        cache reruns only the install when the tree's content changes.
set -euo pipefail
cd "$(dirname "$0")/.."
base_image=nnofi-base:bookworm
node_image=nnofi-node:latest
mode=${NNOFI_BASE:-debootstrap}
logs=build/lab
mkdir -p "$logs"
# One build at a time (`make images` and the lab's `lab up` may both call this):
# two debootstraps into one build/lab/rootfs would spoil each other.
exec 9>"$logs/.lock"
flock 9

case $mode in
    debootstrap) recipe_files="docker/packages.txt docker/build-base.sh" ;;
    registry)    recipe_files="docker/packages.txt docker/Dockerfile.base-registry" ;;
    *) echo "NNOFI_BASE must be debootstrap or registry, not '$mode'" >&2; exit 2 ;;
esac
# The mode is part of the recipe: switching it rebuilds the base.
recipe=$({ echo "$mode"; cat $recipe_files; } | sha256sum | cut -c1-16)

# run LOG CMD...: output to LOG, shown (its end) only when CMD fails.
run() {
    local log=$1; shift
    "$@" >"$log" 2>&1 || { tail -40 "$log" >&2; echo "failed, full log: $log" >&2; exit 1; }
}

# Base image.
t0=$SECONDS
before=$(docker images -q --no-trunc "$base_image")
if [ -n "$(docker images -q --filter "label=org.nnofi.recipe=$recipe" "$base_image")" ]; then
    state="up to date"
elif [ "$mode" = debootstrap ]; then
    run "$logs/base-build.log" docker/build-base.sh "$base_image" "$recipe"
    state=built
else
    run "$logs/base-build.log" docker build --force-rm -f docker/Dockerfile.base-registry \
        --label "org.nnofi.recipe=$recipe" --label org.nnofi.base=registry -t "$base_image" docker
    state=built
fi
# Drop the image this one replaces (left dangling); kept while something uses it.
drop_replaced() {
    local before=$1 image=$2
    if [ -n "$before" ] && [ "$before" != "$(docker images -q --no-trunc "$image")" ]; then
        docker image rm "$before" >/dev/null 2>&1 || true
    fi
}
drop_replaced "$before" "$base_image"
echo "$base_image: $state ($((SECONDS - t0)) s, $mode, recipe $recipe)"

# Node image. The context is what git knows of the tree (tracked files and
# untracked ones that .gitignore does not exclude, as they are now on disk), so
# no .venv, build/, *.so or editor litter reaches docker. Outside a git checkout
# the plain tree is sent and the repo root's .dockerignore does the filtering.
# docker/ itself is left out but for the Dockerfile: editing this script or the
# README must not make a new node image.
t0=$SECONDS
before=$(docker images -q --no-trunc "$node_image")
node_build() {
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git ls-files -z --cached --others --exclude-standard |
            while IFS= read -r -d '' f; do
                case $f in docker/Dockerfile.node) ;; docker/*) continue ;; esac
                [ -e "$f" ] && printf '%s\0' "$f"
            done |
            tar --null -T - -c --owner=0 --group=0 --numeric-owner |
            docker build --force-rm -f docker/Dockerfile.node --build-arg "BASE=$base_image" -t "$node_image" -
    else
        docker build --force-rm -f docker/Dockerfile.node --build-arg "BASE=$base_image" -t "$node_image" .
    fi
}
run "$logs/node-build.log" node_build
after=$(docker images -q --no-trunc "$node_image")
if [ "$before" = "$after" ]; then
    state="up to date"
else
    state=built
    drop_replaced "$before" "$node_image"
fi
echo "$node_image: $state ($((SECONDS - t0)) s)"
