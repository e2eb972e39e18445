#!/usr/bin/env bash
# Builds the sluice container image without a registry or a daemon: an OCI image from scratch holding
# the stripped `sluice` binary, exactly the shared libraries `ldd` lists for it (and the dynamic loader),
# and the few files a non-root process needs (/etc/passwd, /etc/group, /etc/nsswitch.conf, /tmp).
#
#   packaging/image.sh [--binary PATH] [--out DIR] [--tag TAG]
#
#   --binary  package this sluice binary instead of building one (default: a release build of
#             cli/sluice in build-release/)
#   --out     where the image goes (default build-image/): DIR/oci is the OCI layout (image
#             sluice:TAG), DIR/sluice-TAG.tar a docker-archive for `kind load image-archive` or
#             `docker load`
#   --tag     the image tag (default: the project version in meson.build, which the manifests in
#             examples/kubernetes/ name)
#
# Needs umoci and skopeo (Debian packages; installed when missing and run as root).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

binary="" out="build-image" tag=""
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    *) echo "image.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$tag" ] || tag=$(sed -n "s/^  version : '\([^']*\)',$/\1/p" meson.build | head -1)
[ -n "$tag" ] || { echo "image.sh: no version found in meson.build" >&2; exit 1; }

missing=""
for tool in umoci skopeo; do command -v "$tool" >/dev/null || missing="$missing $tool"; done
if [ -n "$missing" ]; then
  if [ "$(id -u)" -ne 0 ]; then echo "image.sh: missing$missing" >&2; exit 1; fi
  apt-get install -y -qq $missing >/dev/null
fi

if [ -z "$binary" ]; then
  if [ ! -f build-release/build.ninja ]; then
    meson setup build-release --buildtype=release -Dtests=false >/dev/null
  fi
  ninja -C build-release cli/sluice >/dev/null
  binary=build-release/cli/sluice
fi
[ -x "$binary" ] || { echo "image.sh: $binary is not an executable" >&2; exit 1; }

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc" "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"

# The binary, stripped (the debug information stays with the build).
cp "$binary" "$rootfs/usr/local/bin/sluice"
strip --strip-unneeded "$rootfs/usr/local/bin/sluice"

# Every library the loader will ask for, at the path it will ask for it, and the loader itself.
copy_with_path() {
  local path=$1
  mkdir -p "$rootfs$(dirname "$path")"
  cp -L "$path" "$rootfs$path"
}
libs=$(ldd "$binary" | awk '/=> \// { print $3 } /^\t\/.*ld-linux/ { print $1 }')
[ -n "$libs" ] || { echo "image.sh: ldd listed no libraries for $binary (a static binary needs none)" >&2; }
for lib in $libs; do
  copy_with_path "$lib"
done
# The loader is named by its /lib64 path in the binary, and by /lib/x86_64-linux-gnu inside glibc.
loader=$(ldd "$binary" | awk '/ld-linux/ { print ($3 ~ /^\// ? $3 : $1) }' | head -1)
if [ -n "$loader" ]; then copy_with_path "$(readlink -f "$loader")"; fi

# A non-root user (the distroless "nonroot" numbers) and name resolution from /etc/hosts, then DNS.
cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
sluice:x:65532:65532:sluice:/nonexistent:/sbin/nologin
EOF
cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
sluice:x:65532:
EOF
echo "hosts: files dns" >"$rootfs/etc/nsswitch.conf"

# The OCI image: one layer over an empty base, configured to run sluice as 65532.
rm -rf "$out/oci"
umoci init --layout "$out/oci"
umoci new --image "$out/oci:$tag"
umoci unpack --image "$out/oci:$tag" "$work/bundle" >/dev/null
cp -a "$rootfs/." "$work/bundle/rootfs/"
umoci repack --image "$out/oci:$tag" "$work/bundle"
umoci config --image "$out/oci:$tag" \
  --config.user 65532:65532 \
  --config.entrypoint /usr/local/bin/sluice \
  --config.cmd --config --config.cmd /etc/sluice/sluice.json \
  --config.workingdir / \
  --config.label org.opencontainers.image.title=sluice \
  --config.label "org.opencontainers.image.version=$tag" \
  --author sluice
umoci gc --layout "$out/oci"

# The same image as a docker-archive, named sluice:TAG, for `kind load image-archive` or `docker load`.
rm -f "$out/sluice-$tag.tar"
skopeo --insecure-policy copy -q "oci:$out/oci:$tag" "docker-archive:$out/sluice-$tag.tar:sluice:$tag"

compressed=$(find "$out/oci/blobs" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
uncompressed=$(du -sb "$rootfs" | cut -f1)
echo "image: sluice:$tag in $out/oci (OCI layout) and $out/sluice-$tag.tar (docker-archive)"
echo "image_size_bytes: $compressed (compressed layer and metadata), $uncompressed unpacked"
