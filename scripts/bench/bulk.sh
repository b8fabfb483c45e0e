#!/usr/bin/env bash
# bulk.sh BIN_DIR N LABEL [server flags...]: fresh log-server from BIN_DIR on a fresh data folder,
# N claims through POST /v1/add-bundle (bundles of 1,000, 8 in flight). --max-skew covers the
# pre-signing time of large runs (every claim is signed before the first is sent).
set -euo pipefail
BIN=$1; N=$2; LABEL=$3; shift 3
D=${BULK_DIR:-$(mktemp -d /tmp/bulk-XXXX)}
mkdir -p $D
$BIN/log-server --data $D/data --listen 127.0.0.1:0 --max-skew 86400 "$@" > $D/server.out 2>&1 &
PID=$!
for i in $(seq 1 100); do ADDR=$(grep -o 'listening on [0-9.:]*' $D/server.out | awk '{print $3}' || true); [ -n "$ADDR" ] && break; sleep 0.1; done
echo "== $LABEL N=$N flags: $* load $(cut -d' ' -f1 /proc/loadavg) addr $ADDR pid $PID dir $D"
$BIN/examples/loadgen --url http://$ADDR --claims $N --concurrency 8 --bulk 1000 --lookups 0 --verify 100 \
    --admin-token-file $D/data/admin.token --server-pid $PID --data-dir $D/data 2>&1 | grep -vE "^\s+(at|[0-9]+:)"
if [ -z "${BULK_KEEP:-}" ]; then kill -TERM $PID; wait $PID 2>/dev/null || true; rm -rf $D; fi
