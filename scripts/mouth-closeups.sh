#!/usr/bin/env bash
# Mouth close-ups from the sheet frames of `avatar bench realism --sheet-only --frames-dir DIR` (one 512² PNG per
# photo and pose: NAME-rest.png, NAME-open.png, NAME-m.png, NAME-f.png, NAME-smile.png): one row per photo, columns
# rest, open vowel, m, f, smile, each the 160×97 crop around the mouth of the aligned frame (x 176, y 262) at 1.5× (240×146).
#   scripts/mouth-closeups.sh DIR OUT.jpg NAME...   e.g. scripts/mouth-closeups.sh /tmp/frames docs/frames/mouths-after.jpg biden grace_hopper obama astronaut
set -euo pipefail
dir=$1 out=$2
shift 2
inputs=() rows=()
n=0
for name in "$@"; do
  for pose in rest open m f smile; do
    inputs+=(-i "$dir/$name-$pose.png")
  done
done
filter=""
for ((i = 0; i < n + 5 * $#; i++)); do filter+="[$i:v]crop=160:97:176:262,scale=240:146:flags=lanczos[c$i];"; done
for ((r = 0; r < $#; r++)); do
  filter+="[c$((5 * r))][c$((5 * r + 1))][c$((5 * r + 2))][c$((5 * r + 3))][c$((5 * r + 4))]hstack=inputs=5[r$r];"
  rows+=("[r$r]")
done
filter+="$(printf '%s' "${rows[@]}")vstack=inputs=$#[out]"
ffmpeg -v error -y "${inputs[@]}" -filter_complex "$filter" -map "[out]" -q:v 3 -frames:v 1 -update 1 "$out"
echo "$out: rows $*; columns rest, open, m, f, smile"
