# Side-by-side timing for the bench scripts: `pairs RUNS NAME_A CMD_A NAME_B CMD_B` runs the
# two shell commands in turn (A B A B ..., RUNS of each), times each whole process with
# /usr/bin/time (wall seconds and peak RSS), prints every run, then the medians and the
# ratio B/A of the median wall times (above 1: A is faster). A command that fails stops the
# script with its log.
# shellcheck shell=bash

pairs_need_time() {
  if [ ! -x /usr/bin/time ]; then
    apt-get install -y -q time >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null && apt-get install -y -q time >/dev/null; }
  fi
}

# pairs_one CMD: runs CMD under sh, prints "WALL_S PEAK_KIB".
pairs_one() {
  local out
  out=$(mktemp)
  if ! /usr/bin/time -f '%e %M' -o "$out.t" sh -c "$1" >"$out" 2>&1; then
    echo "failed: $1" >&2
    tail -20 "$out" >&2
    rm -f "$out" "$out.t"
    return 1
  fi
  tail -1 "$out.t"
  rm -f "$out" "$out.t"
}

pairs() {
  local runs=$1 na=$2 ca=$3 nb=$4 cb=$5 i a b
  local -a wa=() wb=() ma=() mb=()
  pairs_need_time
  for ((i = 1; i <= runs; i++)); do
    a=$(pairs_one "$ca") || exit 1
    b=$(pairs_one "$cb") || exit 1
    awk -v i="$i" -v na="$na" -v a="$a" -v nb="$nb" -v b="$b" 'BEGIN {
      split(a, x, " "); split(b, y, " ")
      printf "  run %d: %s %6.2f s %7.1f MiB | %s %6.2f s %7.1f MiB\n", i, na, x[1], x[2] / 1024, nb, y[1], y[2] / 1024
    }'
    wa+=("${a% *}"); ma+=("${a#* }"); wb+=("${b% *}"); mb+=("${b#* }")
  done
  python3 - "$na" "$nb" "${wa[*]}" "${ma[*]}" "${wb[*]}" "${mb[*]}" <<'PY'
import statistics, sys
na, nb = sys.argv[1], sys.argv[2]
wa, ma, wb, mb = ([float(x) for x in s.split()] for s in sys.argv[3:7])
m = statistics.median
print("  median: %s %.2f s, peak %.1f MiB | %s %.2f s, peak %.1f MiB | %s/%s time %.2fx"
      % (na, m(wa), m(ma) / 1024, nb, m(wb), m(mb) / 1024, nb, na, m(wb) / m(wa)))
PY
}
