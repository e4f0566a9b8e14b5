#!/usr/bin/env bash
# Installs the Debian 12 (bookworm) packages Gimbal needs to build, test and benchmark.
# Idempotent and non-interactive; run as root (or with sudo available). Extra package names given
# as arguments are installed too (scripts/fuzz.sh adds the sanitizer and libFuzzer runtime this way).
# clang, clang-format and clang-tidy serve `make lint` and the thread-safety check of `make test`.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ccache mold
  libgtest-dev libgmock-dev libbenchmark-dev
  libyaml-cpp-dev libcli11-dev nlohmann-json3-dev libspdlog-dev libfmt-dev
  libboost-dev libboost-system-dev
  libzmq3-dev libmsgpack-dev libmsgpack-cxx-dev libssl-dev libxxhash-dev robin-map-dev
  libgoogle-perftools-dev
  coinor-libcbc-dev coinor-cbc libglpk-dev glpk-utils
  python3 python3-matplotlib python3-pytest
  nginx wrk
  chromium
  clang clang-format clang-tidy
  "$@"
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
