#!/usr/bin/env bash
# End-to-end check of the engine host with real data (pocketsphinx-testdata, skimage images).
#   PY=~/.avatar/venv/bin/python MODELS=/tmp/avatar-models PORT=8811 engine/smoke_test.sh
# Provisions MODELS, starts the host, checks every endpoint and prints curl timings
# (3 runs each: min / median / max of %{time_total}), then stops the host it started.
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
PY="${PY:-$HOME/.avatar/venv/bin/python}"
MODELS="${MODELS:-/tmp/avatar-models}"
PORT="${PORT:-8811}"
U="http://127.0.0.1:$PORT"
WORK="$(mktemp -d)"
LOG="$WORK/host.log"
LIBRI=/usr/share/pocketsphinx/test/data/librivox
SKD="$("$PY" -c 'import os, skimage; print(os.path.join(os.path.dirname(skimage.__file__), "data"))')"
FAIL=0
cd "$HERE"
HOST_PID=""

cleanup() { [ -n "$HOST_PID" ] && kill "$HOST_PID" 2>/dev/null; wait "$HOST_PID" 2>/dev/null; }
trap cleanup EXIT

ok()   { echo "PASS  $*"; }
bad()  { echo "FAIL  $*"; FAIL=1; }
# timed NAME CURL-ARGS... : 3 runs, prints min/median/max seconds, keeps the last body in $WORK/body
timed() {
  local name="$1"; shift; local ts=()
  for _ in 1 2 3; do ts+=("$(curl -s -o "$WORK/body" -w '%{time_total}' "$@")"); done
  printf 'TIME  %-44s %s\n' "$name" "$(printf '%s\n' "${ts[@]}" | sort -n | tr '\n' ' ' | awk '{printf "min %.3f  med %.3f  max %.3f s", $1, $2, $3}')"
}
code() { curl -s -o "$WORK/body" -w '%{http_code}' "$@"; }
jget() { "$PY" -c "import json,sys; d=json.load(open('$WORK/body')); print($1)"; }

echo "== provision"
"$PY" -m avatar_engine.provision --models-dir "$MODELS" >/dev/null 2>&1 || bad "provision"
t0=$(date +%s.%N); "$PY" -m avatar_engine.provision --models-dir "$MODELS" --json >/dev/null && \
  ok "provision re-run $(echo "$(date +%s.%N) - $t0" | bc) s"

echo "== start host"
cd "$HERE"
t0=$(date +%s.%N)
"$PY" -m avatar_engine --host 127.0.0.1 --port "$PORT" --models-dir "$MODELS" 2>"$LOG" &
HOST_PID=$!
for _ in $(seq 1 600); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$U/health")" = 200 ] && break; sleep 0.05
done
echo "TIME  start-up to /health 200                      $(echo "$(date +%s.%N) - $t0" | bc) s"
[ "$(code "$U/health")" = 200 ] || { bad "health"; cat "$WORK/body"; exit 1; }
timed "GET /health" "$U/health"
timed "GET /v1/voices" "$U/v1/voices"

echo "== ASR on LibriVox clips (pocketsphinx-testdata)"
while read -r line; do
  id="$(sed -E 's/.*\((.*)\)$/\1/' <<<"$line")"
  ref="$(sed -E 's/<s> (.*) <\/s>.*/\1/' <<<"$line")"
  c=$(code -F "file=@$LIBRI/$id.wav" -F model=whisper-1 -F response_format=verbose_json "$U/v1/audio/transcriptions")
  hyp="$(jget "d['text']")"
  echo "      ref: $ref"; echo "      hyp: $hyp   [$c, $(jget "d['language']") p=$(jget "d['language_probability']"), $(jget "d['duration']") s]"
done < "$LIBRI/transcription"
CLIP="$LIBRI/sense_and_sensibility_01_austen_64kb-0870.wav"
timed "ASR 7.1 s clip, language auto" -F "file=@$CLIP" "$U/v1/audio/transcriptions"
timed "ASR 7.1 s clip, language=en" -F "file=@$CLIP" -F language=en "$U/v1/audio/transcriptions"
ffmpeg -nostdin -y -loglevel error -i "$CLIP" -ar 44100 -ac 2 "$WORK/clip.mp3"
timed "ASR 7.1 s clip as 44.1 kHz stereo mp3, auto" -F "file=@$WORK/clip.mp3" "$U/v1/audio/transcriptions"

echo "== TTS -> ASR round trips"
roundtrip() {  # voice language text
  local body; body=$("$PY" -c 'import json,sys; print(json.dumps({"model":"tts-1","input":sys.argv[1],"voice":sys.argv[2],"response_format":"wav"}, ensure_ascii=False))' "$3" "$1")
  timed "TTS $1 (${#3} chars)" -H 'Content-Type: application/json' -d "$body" "$U/v1/audio/speech"
  cp "$WORK/body" "$WORK/$1.wav"
  local dur; dur=$(curl -s -D - -o /dev/null -H 'Content-Type: application/json' -d "$body" "$U/v1/audio/speech" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-audio-duration"{print $2}')
  timed "ASR of $1 audio ($dur s), auto" -F "file=@$WORK/$1.wav" "$U/v1/audio/transcriptions"
  echo "      said: $3"; echo "      heard: $(jget "d['text']")  [lang $(jget "d['language']")]"
}
roundtrip en_US-joe-medium en "Hello! I am your avatar, and I can speak clearly today."
roundtrip slt en "Hello! I am your avatar, and I can speak clearly today."
roundtrip msu_ru_nsh ru "Привет, как у тебя дела сегодня?"

echo "== landmarks"
timed "landmarks astronaut.png (512x512)" -F "file=@$SKD/astronaut.png" "$U/v1/face/landmarks"
[ "$(jget "len(d['landmarks'])")" = 478 ] && ok "astronaut: 478 landmarks, pose $(jget "d['head_pose']")" || bad "astronaut"
for f in chelsea.png; do
  c=$(code -F "file=@$SKD/$f" "$U/v1/face/landmarks")
  [ "$c" = 422 ] && [ "$(jget "d['error']['code']")" = no_face ] && ok "$f -> 422 no_face" || bad "$f -> $c"
done
timed "landmarks chelsea.png (cat, no face)" -F "file=@$SKD/chelsea.png" "$U/v1/face/landmarks"
"$PY" -c "from PIL import Image; Image.new('RGB',(640,480),(255,255,255)).save('$WORK/blank.png')"
c=$(code -F "file=@$WORK/blank.png" "$U/v1/face/landmarks"); [ "$c" = 422 ] && ok "blank -> 422 $(jget "d['error']['code']")" || bad "blank -> $c"
head -c 20000 /dev/urandom > "$WORK/random.bin"
c=$(code -F "file=@$WORK/random.bin" "$U/v1/face/landmarks"); [ "$c" = 400 ] && ok "random bytes image -> 400 $(jget "d['error']['code']")" || bad "random image -> $c"
c=$(code -F "file=@$WORK/random.bin" "$U/v1/audio/transcriptions"); [ "$c" = 400 ] && ok "random bytes audio -> 400 $(jget "d['error']['code']")" || bad "random audio -> $c"
: > "$WORK/empty.wav"
c=$(code -F "file=@$WORK/empty.wav" "$U/v1/audio/transcriptions"); [ "$c" = 400 ] && ok "empty audio -> 400 $(jget "d['error']['code']")" || bad "empty audio -> $c"
c=$(code -H 'Content-Type: application/json' -d '{"input":"hi","voice":"alloy"}' "$U/v1/audio/speech"); [ "$c" = 400 ] && ok "unknown voice -> 400 $(jget "d['error']['code']")" || bad "unknown voice -> $c"
c=$(code -H 'Content-Type: application/json' -d '{"input":"","voice":"slt"}' "$U/v1/audio/speech"); [ "$c" = 400 ] && ok "empty input -> 400 $(jget "d['error']['code']")" || bad "empty input -> $c"
"$PY" -c "
from PIL import Image
a = Image.open('$SKD/astronaut.png').convert('RGB')
two = Image.new('RGB', (1024, 512)); two.paste(a, (0, 0)); two.paste(a.transpose(Image.FLIP_LEFT_RIGHT), (512, 0)); two.save('$WORK/two.jpg')"
c=$(code -F "file=@$WORK/two.jpg" "$U/v1/face/landmarks"); [ "$c" = 422 ] && ok "two faces -> 422 $(jget "d['error']['code']")" || bad "two faces -> $c"
c=$(code -F "file=@$WORK/two.jpg" -F multiple=largest "$U/v1/face/landmarks"); [ "$c" = 200 ] && ok "two faces, multiple=largest -> 200, warnings $(jget "d['warnings']")" || bad "largest -> $c"
head -c 52428801 /dev/zero > "$WORK/big.bin"
c=$(code -F "file=@$WORK/big.bin" "$U/v1/audio/transcriptions"); [ "$c" = 413 ] && ok "50 MB + 1 byte -> 413 $(jget "d['error']['code']")" || bad "big -> $c"

grep -v '^{' "$LOG" | head -5 | sed 's/^/NON-JSON LOG LINE: /'
[ "$FAIL" = 0 ] && echo "ALL CHECKS PASSED" || echo "SOME CHECKS FAILED"
exit "$FAIL"
