#!/usr/bin/env bash
# Checks the thread-safety annotations (src/core/thread_annotations.h) with clang's
# -Wthread-safety: configures build/thread-safety with clang++ (configure only, for its
# compile_commands.json), then runs clang++ -fsyntax-only with -Wthread-safety as the only warning,
# an error, on every source that includes thread_annotations.h or a header that does. Nothing is
# built; one file at a time. Usage: scripts/thread-safety-check.sh [source.cc ...]
# (docs/router.md, Implementation notes).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build/thread-safety}
cxx=${CLANGXX:-clang++}

mkdir -p "$build"
if ! cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER="$cxx" \
  -DGIMBAL_BUILD_BENCH=OFF >"$build/configure.log" 2>&1; then
  if [[ ! -f $build/compile_commands.json ]]; then
    cat "$build/configure.log" >&2
    exit 1
  fi
  echo "configuring $build failed (see $build/configure.log); using its last compile commands" >&2
fi

if [[ $# -gt 0 ]]; then
  files=("$@")
else
  # The headers that include thread_annotations.h, directly or through one another.
  headers=(core/thread_annotations.h)
  for _ in 1 2 3 4; do
    pattern=$(printf '#include "%s"\\|' "${headers[@]}")
    mapfile -t found < <(grep -rl --include='*.h' "${pattern%\\|}" src | sed 's|^src/||' | sort)
    mapfile -t headers < <(printf '%s\n' core/thread_annotations.h "${found[@]}" | sort -u)
  done
  pattern=$(printf '#include "%s"\\|' "${headers[@]}")
  mapfile -t files < <(grep -rl --include='*.cc' "${pattern%\\|}" src | sort)
fi

failed=0
for f in "${files[@]}"; do
  abs=$(realpath "$f")
  # The file's compile command from the clang configuration, as an argument list.
  mapfile -d '' -t args < <(python3 - "$build/compile_commands.json" "$abs" <<'EOF'
import json, shlex, sys
for e in json.load(open(sys.argv[1])):
    if e["file"] == sys.argv[2]:
        args = shlex.split(e["command"])
        out, skip = [], False
        for a in args[1:]:
            if skip:
                skip = False
                continue
            if a in ("-o", "-c"):
                skip = True
                continue
            if a.startswith("-W") or a == "-Werror":
                continue
            out.append(a)
        sys.stdout.write("\0".join(out + [sys.argv[2]]) + "\0")
        break
EOF
  )
  if [[ ${#args[@]} -eq 0 ]]; then
    echo "skip $f: not in $build/compile_commands.json" >&2
    continue
  fi
  echo "check $f"
  # Asio 1.74 enables co_await on clang only with libc++'s <experimental/coroutine>; clang 14 has
  # C++20 coroutines and Asio takes libstdc++'s <coroutine> (as in the fuzz build).
  if ! (cd "$build" && "$cxx" "${args[@]}" -DBOOST_ASIO_HAS_CO_AWAIT=1 -fsyntax-only \
          -Wno-everything -Wthread-safety -Werror=thread-safety); then
    failed=1
  fi
done
if [[ $failed -ne 0 ]]; then
  echo "thread-safety check failed" >&2
  exit 1
fi
echo "thread-safety check passed (${#files[@]} files)"
