#!/usr/bin/env bash
# ctest deps.layering: the modules of src/ include one another in one direction only (README.md, Layout):
#   http <- s3api -> {cache, upstream, cluster};  common under all of them;  admin -> s3api (and what s3api exposes).
# cache and upstream never include each other, http includes no module but common, and nothing but the
# executable's own files (src/*.cpp: main, app, config) includes admin/, app.h or config.h (admin reads
# config.h for `granary admin`). CMake enforces the same at build time (each module sees only the headers
# of the modules it links); this check names the offending line.
#   usage: deps_layering.sh SRC_DIR
set -euo pipefail
src="${1:?usage: deps_layering.sh SRC_DIR}"
declare -A allowed=(
  [common]="common"
  [http]="http common"
  [upstream]="upstream common"
  [cache]="cache common"
  [cluster]="cluster common"
  [s3api]="s3api common http upstream cache cluster"
  [admin]="admin s3api common http upstream cache cluster config.h"
)
status=0
for dir in "$src"/*/; do
  module="$(basename "$dir")"
  if [[ -z "${allowed[$module]+x}" ]]; then
    echo "deps.layering: src/$module is not a known module (add it to tests/deps_layering.sh)"
    status=1
    continue
  fi
  # Every quoted include that names a module folder or a file at the top of src/.
  while IFS= read -r line; do
    file="${line%%:*}"
    rest="${line#*:}"
    lineno="${rest%%:*}"
    target="$(sed -E 's/^[^"]*"([^"]+)".*/\1/' <<<"${rest#*:}")"
    if [[ "$target" == */* ]]; then
      dep="${target%%/*}"
    elif [[ -f "$src/$target" ]]; then
      dep="$target"  # a file at the top of src/ (app.h, config.h)
    else
      continue  # a header of the including file's own folder
    fi
    ok=0
    for a in ${allowed[$module]}; do [[ "$dep" == "$a" ]] && ok=1; done
    if ((!ok)); then
      echo "deps.layering: ${file#"$src"/}:$lineno: $module may not include \"$target\""
      status=1
    fi
  done < <(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$dir" || true)
done
if ((status == 0)); then echo "deps.layering: OK"; fi
exit $status
