#!/usr/bin/env bash
# Lint the C++ sources (`make lint`; docs/install.md, "Lint").
#
#   scripts/lint.sh [--fix] [--changed] [--tidy] [--build DIR] [PATH...]
#
# By default: clang-format against .clang-format, over the C++ files (*.cc, *.h) under src/, bench/,
# fuzz/, include/ and tests/ (or the files and folders given as PATH). Prints every file that is
# not formatted, with the lines clang-format would change, and a count; exits 1 when any is found.
#   --fix        rewrite those files in place instead (clang-format -i); exits 0
#   --changed    only the files changed against git HEAD (staged, unstaged and untracked)
#   --tidy       also run clang-tidy (.clang-tidy) on the .cc files among those that are changed
#                against HEAD (as --changed), with the compile commands of --build DIR (default
#                build/release; configure it first). Opt-in: about 10-40 s per file.
#   --build DIR  the build folder holding compile_commands.json for --tidy
# CLANG_FORMAT and CLANG_TIDY name other binaries (default clang-format and clang-tidy; Debian 12's
# are version 14, and other versions format a few constructs differently).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CLANG_FORMAT="${CLANG_FORMAT:-clang-format}"
CLANG_TIDY="${CLANG_TIDY:-clang-tidy}"
DIRS=(src bench fuzz include tests python)

fix=0
changed=0
tidy=0
build=build/release
paths=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --fix) fix=1 ;;
    --changed) changed=1 ;;
    --tidy) tidy=1 ;;
    --build)
      [[ $# -ge 2 ]] || { echo "lint: --build needs a folder" >&2; exit 2; }
      build="$2"
      shift
      ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    -*) echo "lint: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) paths+=("$1") ;;
  esac
  shift
done
[[ ${#paths[@]} -gt 0 ]] || paths=("${DIRS[@]}")
for p in "${paths[@]}"; do [[ -e "$p" ]] || { echo "lint: $p does not exist" >&2; exit 2; }; done

command -v "$CLANG_FORMAT" >/dev/null ||
  { echo "lint: $CLANG_FORMAT not found (Debian package clang-format; scripts/install-deps.sh)" >&2; exit 2; }

# The C++ files under the given paths: tracked and untracked-but-not-ignored in a git checkout,
# every file otherwise; files deleted from the working tree are left out.
list_files() {
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files --cached --others --exclude-standard -- "$@"
  else
    find "$@" -type f
  fi | grep -E '\.(cc|h)$' | sort -u | while read -r f; do [[ -f "$f" ]] && echo "$f"; done
}
changed_files() {  # against HEAD, plus untracked; only existing .cc/.h files under the lint folders
  { git diff --name-only HEAD -- "${DIRS[@]}"; git ls-files --others --exclude-standard -- "${DIRS[@]}"; } |
    grep -E '\.(cc|h)$' | sort -u | while read -r f; do [[ -f "$f" ]] && echo "$f"; done
}

if (( changed )); then
  git rev-parse --is-inside-work-tree >/dev/null 2>&1 || { echo "lint: --changed needs a git checkout" >&2; exit 2; }
  mapfile -t all < <(list_files "${paths[@]}")
  mapfile -t recent < <(changed_files)
  mapfile -t files < <(comm -12 <(printf '%s\n' "${all[@]}") <(printf '%s\n' "${recent[@]}"))
else
  mapfile -t files < <(list_files "${paths[@]}")
fi

status=0
if [[ ${#files[@]} -eq 0 ]]; then
  echo "lint: no C++ files to format"
elif (( fix )); then
  before="$(md5sum "${files[@]}")"
  printf '%s\0' "${files[@]}" | xargs -0 -n 50 "$CLANG_FORMAT" -i --style=file
  n="$(md5sum --quiet -c <(echo "$before") 2>/dev/null | grep -c ': FAILED' || true)"
  echo "lint: clang-format rewrote $n of ${#files[@]} files"
else
  # --dry-run prints one "file:line:col: warning" per change it would make.
  report="$(printf '%s\0' "${files[@]}" | xargs -0 -n 50 "$CLANG_FORMAT" --dry-run --style=file 2>&1 |
            grep -E '^[^ ]+:[0-9]+:[0-9]+: (warning|error):' || true)"
  if [[ -n "$report" ]]; then
    awk -F: '{ if (!($1 in n)) order[++k] = $1; if (!(($1, $2) in seen)) { seen[$1, $2] = 1; n[$1]++; l[$1] = l[$1] " " $2 } }
      END {
        for (i = 1; i <= k; i++) { f = order[i]; t += n[f]; printf "%s: %d line%s:%s\n", f, n[f], n[f] == 1 ? "" : "s", l[f] }
        printf "lint: %d of %d files not clang-formatted (%d lines); see them with `clang-format --dry-run FILE`, fix with scripts/lint.sh --fix\n", k, total, t
      }' total="${#files[@]}" <<<"$report" >&2
    status=1
  else
    echo "lint: ${#files[@]} file(s) clang-formatted ($("$CLANG_FORMAT" --version | grep -Eo 'version [0-9.]+'))"
  fi
fi

if (( tidy )); then
  command -v "$CLANG_TIDY" >/dev/null ||
    { echo "lint: $CLANG_TIDY not found (Debian package clang-tidy; scripts/install-deps.sh)" >&2; exit 2; }
  [[ -f "$build/compile_commands.json" ]] ||
    { echo "lint: $build/compile_commands.json missing: configure first (cmake --preset release), or pass --build DIR" >&2; exit 2; }
  git rev-parse --is-inside-work-tree >/dev/null 2>&1 || { echo "lint: --tidy needs a git checkout" >&2; exit 2; }
  mapfile -t tidy_files < <(comm -12 <(list_files "${paths[@]}") <(changed_files) | grep -E '\.cc$' || true)
  if [[ ${#tidy_files[@]} -eq 0 ]]; then
    echo "lint: clang-tidy: no changed .cc files"
  else
    echo "lint: clang-tidy on ${#tidy_files[@]} changed files (${build})"
    for f in "${tidy_files[@]}"; do
      if ! grep -qF "$ROOT/$f\"" "$build/compile_commands.json"; then
        echo "lint: clang-tidy: $f is not in $build/compile_commands.json (reconfigure?); skipped" >&2
        continue
      fi
      "$CLANG_TIDY" -p "$build" --quiet "$f" 2>/dev/null || { echo "lint: clang-tidy: $f has findings" >&2; status=1; }
    done
  fi
fi
exit "$status"
