#!/usr/bin/env bash
# Installs the Debian packages Sluice builds, tests and benchmarks with. Idempotent; needs root (or sudo).
set -euo pipefail
packages=(g++ meson ninja-build pkg-config libboost1.81-dev libssl-dev nlohmann-json3-dev catch2
          libyaml-cpp-dev libbenchmark-dev python3 python3-pytest python3-websockets curl openssl procps
          libnghttp2-dev libjemalloc-dev nghttp2-client python3-h2 python3-grpcio python3-yaml umoci skopeo
          clang libclang-rt-14-dev)  # clang + its runtimes: the libFuzzer harnesses (tests/fuzz)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q "${missing[@]}"
