#!/usr/bin/env bash
# ab.sh BIN_DIR N LABEL: fresh log-server from BIN_DIR on a fresh data folder, N claims at 128 in flight.
set -euo pipefail
BIN=$1; N=$2; LABEL=$3
D=$(mktemp -d /tmp/ab-XXXX)
$BIN/log-server --data $D/data --listen 127.0.0.1:0 > $D/server.out 2>&1 &
PID=$!
for i in $(seq 1 100); do ADDR=$(grep -o 'listening on [0-9.:]*' $D/server.out | awk '{print $3}' || true); [ -n "$ADDR" ] && break; sleep 0.1; done
L0=$(cut -d' ' -f1 /proc/loadavg)
OUT=$($BIN/examples/loadgen --url http://$ADDR --claims $N --concurrency 128 --lookups 0 --verify 0 \
    --admin-token-file $D/data/admin.token --server-pid $PID --data-dir $D/data 2>&1)
L1=$(cut -d' ' -f1 /proc/loadavg)
echo "== $LABEL N=$N load $L0 -> $L1"
echo "$OUT" | grep -E "claims:|RSS|bytes|per entry" 
kill -TERM $PID; wait $PID 2>/dev/null || true
rm -rf $D
