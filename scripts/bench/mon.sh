#!/usr/bin/env bash
# mon.sh N: a fresh hardened log-server with N claims, then monitor --once from an empty state with
# the base and the new monitor, interleaved twice.
set -euo pipefail
N=$1; B=${BASE_BIN:?release bin folder of the base commit}; H=${NEW_BIN:?release bin folder of the new commit}
D=$(mktemp -d /tmp/mon-XXXX)
$H/log-server --data $D/data --listen 127.0.0.1:0 > $D/server.out 2>&1 &
PID=$!
for i in $(seq 1 100); do ADDR=$(grep -o 'listening on [0-9.:]*' $D/server.out | awk '{print $3}' || true); [ -n "$ADDR" ] && break; sleep 0.1; done
$H/examples/loadgen --url http://$ADDR --claims $N --concurrency 128 --lookups 0 --verify 0 --admin-token-file $D/data/admin.token 2>&1 | grep "claims:"
SIZE=$(curl -s http://$ADDR/checkpoint | sed -n 2p)
echo "log size $SIZE entries (claims, enrollments and map leaves)"
INFO=$(curl -s http://$ADDR/v1/info)
ORIGIN=$(echo "$INFO" | python3 -c 'import json,sys; print(json.load(sys.stdin)["origin"])')
VKEY=$(echo "$INFO" | python3 -c 'import json,sys; print(json.load(sys.stdin)["vkey"])')
cat > $D/monitor.toml <<T
[[log]]
url = "http://$ADDR"
origin = "$ORIGIN"
vkey = "$VKEY"
hash = "blake3"
[[watch]]
sii = "tel:+14155550100"
allowed = ["msp-a.example"]
[rules]
conflicting_claim = "all"
unattested_claim = "watched"
revoked_by_prover = "all"
[[sink]]
type = "file"
path = "$D/alerts.jsonl"
T
for r in 1 2; do
  for v in base new; do
    BIN=$B; [ $v = new ] && BIN=$H
    L0=$(cut -d' ' -f1 /proc/loadavg)
    S=$(date +%s.%N)
    /usr/bin/time -f "%e s wall, %U+%S s CPU, %M KiB peak" $BIN/monitor --config $D/monitor.toml --state $D/state-$v-$r --once --no-progress > $D/mon-$v-$r.out 2> $D/mon-$v-$r.err || { tail -5 $D/mon-$v-$r.err; }
    E=$(date +%s.%N)
    echo "== monitor $v run $r: $(tail -1 $D/mon-$v-$r.err); $(python3 -c "print(round($SIZE/($E-$S)))") entries/s; load $L0"
    grep -o "catch-up time.*" $D/mon-$v-$r.err | tail -1 || true
  done
done
kill -TERM $PID; wait $PID 2>/dev/null || true
rm -rf $D
