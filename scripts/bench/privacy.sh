#!/usr/bin/env bash
# privacy.sh BIN N: issue #15's lookup figures in one run: lookups/s and p50/p99 direct, through
# the Oblivious HTTP relay, and paid with Privacy Pass tokens (redeemed, spent set synced).
# Two fresh logs with 100k claims each (bundles): A serves lookups freely (direct and through an
# ohttp-relay in front of its gateway), B requires tokens of a fresh ledger-issuer. N lookups
# of random numbers per run, 16 in flight; direct and relay interleaved twice.
# BIN: a release folder with log-server, ledger-issuer, ohttp-relay, ledger and
# examples/{loadgen,lookup_load}.
set -euo pipefail
BIN=$1; N=$2
D=$(mktemp -d /tmp/privacy-XXXX)
addr_of() { for i in $(seq 1 300); do A=$(grep -o 'listening on [0-9.:]*' $1 | awk '{print $3}' || true); [ -n "$A" ] && { echo $A; return; }; sleep 0.1; done; echo "no address in $1" >&2; exit 1; }
printf '[[msp]]\nname = "msp-bench"\ncredential = "bench-credential-0123456789"\ndaily_budget = 1000000\n' > $D/creds.toml
echo -n bench-credential-0123456789 > $D/cred
$BIN/ledger-issuer --data $D/issuer --listen 127.0.0.1:0 --issuer-credentials $D/creds.toml > $D/issuer.out 2>&1 &
ISS=$(addr_of $D/issuer.out)
$BIN/log-server --data $D/a --listen 127.0.0.1:0 --max-skew 86400 > $D/a.out 2>&1 &
A=$(addr_of $D/a.out); APID=$!
$BIN/log-server --data $D/b --listen 127.0.0.1:0 --max-skew 86400 --require-token http://$ISS > $D/b.out 2>&1 &
B=$(addr_of $D/b.out); BPID=$!
$BIN/ohttp-relay --listen 127.0.0.1:0 --rate-per-s 1000000 --rate-burst 1000000 --gateway http://$A/.well-known/ohttp-gateway > $D/relay.out 2>&1 &
R=$(addr_of $D/relay.out)
for L in $A $B; do
  $BIN/examples/loadgen --url http://$L --claims 100000 --concurrency 8 --bulk 1000 --lookups 0 --verify 0 \
      --admin-token-file $D/$([ $L = $A ] && echo a || echo b)/admin.token 2>&1 | grep "claims:"
done
$BIN/ledger --trust $D/trust-b.toml trust init --log http://$B > /dev/null
S=$(date +%s.%N)
$BIN/ledger --trust $D/trust-b.toml token fetch --issuer http://$ISS --credential $D/cred --count $N > $D/fetch.out 2>&1 || { tail -3 $D/fetch.out; exit 1; }
E=$(date +%s.%N)
echo "== fetched $N tokens in $(python3 -c "print(round($E-$S,2))") s ($(python3 -c "print(round($N/($E-$S)))")/s); openssl: $(openssl speed -seconds 3 ed25519 2>/dev/null | awk '/^ *253 bits/ {print $NF" verify/s"}'); load $(cut -d' ' -f1 /proc/loadavg)"
for r in 1 2; do
  $BIN/examples/lookup_load --dp http://$A --lookups $N --concurrency 16
  $BIN/examples/lookup_load --dp http://$A --relay http://$R --lookups $N --concurrency 16
done
$BIN/examples/lookup_load --dp http://$B --tokens $D/trust-b.tokens.json --lookups $N --concurrency 16
echo "== spent set: $(wc -c < $D/b/tokens-spent 2>/dev/null || echo ?) bytes for $N tokens"
kill -TERM $APID $BPID 2>/dev/null || true
pkill -f "ohttp-relay --listen 127.0.0.1:0 --rate-per-s 1000000" || true
pkill -f "ledger-issuer --data $D/issuer" || true
wait $APID $BPID 2>/dev/null || true
[ -n "${PRIVACY_KEEP:-}" ] || rm -rf $D
