#!/usr/bin/env bash
# mirror.sh BIN N: issue #14's read scale-out figures, in one run on this machine.
# 1. s3s-fs on 127.0.0.1 with a fresh folder; a fresh log-server publishing to it (--publish);
#    N claims in bundles of 1,000 (8 in flight), sampling the publish lag every second.
# 2. Catch-up from empty, timed until /v1/info says verified_size = the log's size: a mirror of
#    the bucket, a mirror of the log's HTTP tiles, the bucket again, and (the peer) `monitor
#    --once` on the log; each after the machine has settled (>= 90% idle for a second).
# 3. Lookups of random SIIs of the run (16 in flight, 100k): the log, then the bucket's mirror.
# BIN is a release folder with log-server, monitor and examples/loadgen.
set -euo pipefail
BIN=$1; N=$2
S3S=${S3S:-$HOME/.cargo/bin/s3s-fs}
D=$(mktemp -d /tmp/mirror-XXXX)
KEY=bench-access SECRET=bench-secret-key
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p $D/s3/bench
$S3S --host 127.0.0.1 --port $PORT --access-key $KEY --secret-key $SECRET $D/s3 > $D/s3.out 2>&1 &
S3PID=$!
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=$KEY \
    AWS_SECRET_ACCESS_KEY=$SECRET AWS_ALLOW_HTTP=true
addr_of() { for i in $(seq 1 300); do A=$(grep -o 'listening on [0-9.:]*' $1 | awk '{print $3}' || true); [ -n "$A" ] && { echo $A; return; }; sleep 0.1; done; echo "no address in $1" >&2; exit 1; }
sleep 0.5
$BIN/log-server --data $D/log --listen 127.0.0.1:0 --max-skew 86400 --publish s3://bench/log > $D/log.out 2>&1 &
LOGPID=$!
LOG=$(addr_of $D/log.out)
echo "== log $LOG pid $LOGPID, s3s-fs :$PORT, load $(cut -d' ' -f1 /proc/loadavg), openssl: $(openssl speed -seconds 3 ed25519 2>/dev/null | awk '/^ *253 bits/ {print $NF" verify/s"}')"
( while kill -0 $LOGPID 2>/dev/null; do curl -s http://$LOG/metrics | awk '/^ledger_publish_lag_entries /{l=$2} /^ledger_tree_size /{s=$2} END{print s, l}' >> $D/lag.txt; sleep 1; done ) &
SAMPLER=$!
$BIN/examples/loadgen --url http://$LOG --claims $N --concurrency 8 --bulk 1000 --lookups 0 --verify 100 \
    --admin-token-file $D/log/admin.token --server-pid $LOGPID --data-dir $D/log 2>&1 | grep -vE "^\s+(at|[0-9]+:)" | tee $D/load.txt
RUN=$(grep -o 'run id [0-9a-f]*' $D/load.txt | head -1 | awk '{print $3}')
SIZE=$(curl -s http://$LOG/checkpoint | sed -n 2p)
for i in $(seq 1 120); do
  P=$(curl -s http://$LOG/metrics | awk '/^ledger_publish_published_size /{print $2}')
  [ "$P" = "$SIZE" ] && break; sleep 1
done
kill $SAMPLER 2>/dev/null || true
echo "== log size $SIZE (run $RUN); bucket published $P; publish lag under load (entries behind the log, 1 s samples): $(awk '{print $2}' $D/lag.txt | sort -n | awk '{a[NR]=$1} END{print "p50", a[int(NR*0.5)+1], "p99", a[int(NR*0.99)+1], "max", a[NR], "of", NR, "samples"}')"
INFO=$(curl -s http://$LOG/v1/info)
ORIGIN=$(echo "$INFO" | python3 -c 'import json,sys; print(json.load(sys.stdin)["origin"])')
VKEY=$(echo "$INFO" | python3 -c 'import json,sys; print(json.load(sys.stdin)["vkey"])')
printf 'origin = "%s"\nlog_vkey = "%s"\nhash = "blake3"\n' "$ORIGIN" "$VKEY" > $D/trust.toml
settle() { # until the 2 cores are >= 90% idle over a second (the log's compactions after the
  # fill, an earlier mirror's), at most 60 s: each catch-up gets the same quiet machine
  for i in $(seq 1 60); do
    local a=($(head -1 /proc/stat)); sleep 1; local b=($(head -1 /proc/stat))
    local tot=0; for k in 1 2 3 4 5 6 7 8; do tot=$((tot + ${b[$k]} - ${a[$k]})); done
    [ $(( (${b[4]} - ${a[4]}) * 100 )) -ge $((tot * 90)) ] && return
  done
}
catch_up() { # NAME SOURCE
  settle
  local L0=$(cut -d' ' -f1 /proc/loadavg)
  local S=$(date +%s.%N)
  $BIN/log-server --mirror-of $2 --trust $D/trust.toml --data $D/$1 --listen 127.0.0.1:0 --mirror-poll-ms 200 > $D/$1.out 2>&1 &
  local MP=$!
  local A=$(addr_of $D/$1.out)
  while true; do
    V=$(curl -s http://$A/v1/info | python3 -c 'import json,sys; print(json.load(sys.stdin)["mirror"]["verified_size"])' 2>/dev/null || echo 0)
    [ "$V" = "$SIZE" ] && break
    kill -0 $MP || { echo "mirror $1 died"; tail -5 $D/$1.out; exit 1; }
    sleep 0.2
  done
  local E=$(date +%s.%N)
  local CPU=$(awk '{print ($14+$15)/100}' /proc/$MP/stat)
  local RSS=$(awk '/VmHWM/{print $2}' /proc/$MP/status)
  echo "== mirror $1 from $2: $SIZE entries in $(python3 -c "print(round($E-$S,2))") s = $(python3 -c "print(round($SIZE/($E-$S)))") entries/s verified; CPU ${CPU} s; peak RSS $((RSS/1024)) MiB; load $L0"
  grep -o '"mirror verified and stored a span".*' $D/$1.out | tail -1 || grep "verified and stored" $D/$1.out | tail -1 || true
  eval "PID_$1=$MP; ADDR_$1=$A"
}
catch_up s3mirror s3://bench/log
catch_up httpmirror http://$LOG
kill -STOP $PID_httpmirror
catch_up s3again s3://bench/log  # the bucket mirror's figure once more, on a quieter machine
kill -TERM $PID_s3again; wait $PID_s3again 2>/dev/null || true
kill -CONT $PID_httpmirror
settle
cat > $D/monitor.toml <<T
[[log]]
url = "http://$LOG"
origin = "$ORIGIN"
vkey = "$VKEY"
hash = "blake3"
[[sink]]
type = "file"
path = "$D/alerts.jsonl"
T
L0=$(cut -d' ' -f1 /proc/loadavg); S=$(date +%s.%N)
/usr/bin/time -f "%e s wall, %U+%S s CPU, %M KiB peak" $BIN/monitor --config $D/monitor.toml --state $D/monstate --once --no-progress > $D/mon.out 2> $D/mon.err || tail -3 $D/mon.err
E=$(date +%s.%N)
echo "== peer: monitor --once from the log: $(tail -1 $D/mon.err); $(python3 -c "print(round($SIZE/($E-$S)))") entries/s; load $L0"
kill -STOP $PID_httpmirror  # idle during the lookup runs
for target in log s3mirror log s3mirror; do
  if [ $target = log ]; then U=http://$LOG; P=$LOGPID; else U=http://$ADDR_s3mirror; P=$PID_s3mirror; fi
  echo "== lookups on $target (load $(cut -d' ' -f1 /proc/loadavg))"
  $BIN/examples/loadgen --url http://$LOG --lookup-url $U --claims 100 --lookups 100000 --lookup-run $RUN:$N \
      --concurrency 16 --verify 10 --admin-token-file $D/log/admin.token --server-pid $P 2>&1 | grep -E "lookups"
done
kill -CONT $PID_httpmirror
kill -TERM $PID_s3mirror $PID_httpmirror $LOGPID 2>/dev/null || true
wait $LOGPID 2>/dev/null || true
kill $S3PID 2>/dev/null || true
[ -n "${MIRROR_KEEP:-}" ] || rm -rf $D
