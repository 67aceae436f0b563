#!/usr/bin/env bash
# Builds llama.cpp's llama-server from the llama.cpp source node-llama-cpp ships (llama/gitRelease.bundle)
# and caches it at <cache>/llama-server/<commit>/llama-server; prints that path; a no-op once built.
#
# Usage: scripts/build-llama-server.sh            (from anywhere; finds node_modules next to this script)
# Env:   BUCKLE_CACHE_DIR    cache root (else $XDG_CACHE_HOME/buckle, else ~/.cache/buckle)
#        BUCKLE_LLAMA_BUNDLE path of a llama.cpp git bundle (default: node-llama-cpp's)
#        BUCKLE_BUILD_JOBS   parallel compile jobs (default: number of CPUs)
#        BUCKLE_KEEP_BUILD=1 keep the source and build trees after a successful build
# Exit:  0 built or found (path on stdout), 2 missing tools (cmake, a C++ compiler, git), 1 build failed.
set -euo pipefail

die() {
  echo "build-llama-server: $1" >&2
  [ -n "${2:-}" ] && echo "  hint: $2" >&2
  exit "${3:-1}"
}

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"

for tool in git cmake; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' is not on PATH" "install it (Debian: apt-get install -y cmake g++ git)" 2
done
if ! command -v c++ >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1 && ! command -v clang++ >/dev/null 2>&1; then
  die "no C++ compiler (c++, g++ or clang++) on PATH" "install one (Debian: apt-get install -y g++)" 2
fi

bundle="${BUCKLE_LLAMA_BUNDLE:-$root/node_modules/node-llama-cpp/llama/gitRelease.bundle}"
[ -f "$bundle" ] || die "llama.cpp source bundle not found at $bundle" "run 'npm ci' in $root, or set BUCKLE_LLAMA_BUNDLE"

commit="$(git bundle list-heads "$bundle" | head -n 1 | cut -d' ' -f1)"
[[ "$commit" =~ ^[0-9a-f]{40}$ ]] || die "cannot read the head commit of $bundle" "the bundle may be corrupt; reinstall node-llama-cpp"

if [ -n "${BUCKLE_CACHE_DIR:-}" ]; then
  cache="$BUCKLE_CACHE_DIR"
elif [ -n "${XDG_CACHE_HOME:-}" ]; then
  cache="$XDG_CACHE_HOME/buckle"
else
  cache="$HOME/.cache/buckle"
fi
dir="$cache/llama-server/$commit"
bin="$dir/llama-server"

if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$dir"
# One build at a time per commit: a second caller waits for the first, then finds the binary.
exec 9>"$dir/.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

src="$dir/src"
build="$dir/build"
rm -rf "$src" "$build"
echo "build-llama-server: cloning llama.cpp $commit from $bundle" >&2
git clone -q --no-checkout "$bundle" "$src"
git -C "$src" -c advice.detachedHead=false checkout -q "$commit"

jobs="${BUCKLE_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}"
start=$(date +%s)
echo "build-llama-server: configuring and building llama-server with $jobs jobs (a few minutes)" >&2
cmake -S "$src" -B "$build" \
  -DLLAMA_CURL=OFF -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON >"$dir/build.log" 2>&1 ||
  die "cmake configure failed (log: $dir/build.log)" "see the log; BUCKLE_KEEP_BUILD=1 keeps the tree"
cmake --build "$build" --target llama-server -j "$jobs" >>"$dir/build.log" 2>&1 ||
  die "cmake build failed (log: $dir/build.log)" "see the log; BUCKLE_KEEP_BUILD=1 keeps the tree"
built="$build/bin/llama-server"
[ -x "$built" ] || die "the build finished but $built is missing (log: $dir/build.log)"

tmp="$bin.tmp-$$"
cp "$built" "$tmp"
chmod 755 "$tmp"
mv -f "$tmp" "$bin"
end=$(date +%s)
{
  echo "commit=$commit"
  echo "bundle=$bundle"
  echo "built_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "build_seconds=$((end - start))"
  echo "jobs=$jobs"
  echo "cmake_flags=-DLLAMA_CURL=OFF -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF"
} >"$dir/BUILD-INFO"
if [ "${BUCKLE_KEEP_BUILD:-0}" != "1" ]; then
  rm -rf "$src" "$build"
fi
echo "build-llama-server: built in $((end - start)) s" >&2
echo "$bin"
