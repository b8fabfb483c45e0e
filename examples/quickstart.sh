#!/usr/bin/env bash
# mimi-ledger quickstart: the whole system on 127.0.0.1, in seconds once the build is done.
#
# Starts a log-server, three auditors (witnesses, quorum 2), the identity prover and a monitor, each
# with a temporary folder; enrolls two honest MSPs, a rogue MSP and the prover; walks through
# attested claims, a rogue claim, verified lookups, the monitor's alerts and an opt-out.
#
# Every command it runs is printed with a leading `$`. It stops every process it started on exit,
# error or Ctrl-C, and exits non-zero as soon as an expected outcome is not seen.
#
#   bash examples/quickstart.sh            # builds in release mode first
#   QUICKSTART_NO_BUILD=1 bash examples/quickstart.sh   # reuse the release binaries
#   QUICKSTART_KEEP=1 ...                  # keep the temporary folder for inspection
#   QUICKSTART_BIN_DIR=DIR ...             # take the binaries from DIR (with QUICKSTART_NO_BUILD=1)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${QUICKSTART_BIN_DIR:-$TARGET/release}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mimi-quickstart.XXXXXX")
PIDS=()

# ------------------------------------------------------------------------------------------------
# Helpers.
# ------------------------------------------------------------------------------------------------

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n "${QUICKSTART_KEEP:-}" ]]; then
        echo "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    if [[ $status -ne 0 ]]; then
        echo "quickstart FAILED (exit $status)" >&2
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The command line as one could paste it: arguments with spaces or shell characters are quoted.
show() {
    local out='$' a
    for a in "$@"; do
        if [[ $a =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
            out+=" $a"
        else
            out+=" '${a//\'/\'\\\'\'}'"
        fi
    done
    printf '%s\n' "$out"
}
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# Prints a command, then runs it.
run() {
    show "$@" >&2
    "$@"
}
fail() {
    echo "UNEXPECTED: $*" >&2
    exit 1
}
# Starts a background process (printing the command), remembers its pid.
# Usage: spawn NAME cmd args...   (stdout -> $WORK/NAME.out, stderr -> $WORK/NAME.err)
spawn() {
    local name=$1
    shift
    printf '%s > %s.out 2> %s.err &\n' "$(show "$@")" "$name" "$name"
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}
# Waits (up to 30 s) for `listening on ADDR` in NAME.out and prints ADDR.
wait_listening() {
    local name=$1 i
    for ((i = 0; i < 300; i++)); do
        if grep -q '^listening on ' "$WORK/$name.out" 2>/dev/null; then
            sed -n 's/^listening on //p' "$WORK/$name.out" | tail -1
            return 0
        fi
        sleep 0.1
    done
    cat "$WORK/$name.err" >&2 || true
    fail "$name did not start"
}
# Runs a command, shows its output, and checks the output contains every given needle.
# Usage: expect "needle1" ["needle2" ...] -- cmd args...
expect() {
    local needles=()
    while [[ $1 != -- ]]; do
        needles+=("$1")
        shift
    done
    shift
    show "$@"
    local out status=0
    out=$("$@" 2>&1) || status=$?
    printf '%s\n' "$out" | sed 's/^/  /'
    for n in "${needles[@]}"; do
        grep -qF -- "$n" <<<"$out" || fail "expected \"$n\" in the output of: $* (exit $status)"
    done
    LAST_STATUS=$status
}

# ------------------------------------------------------------------------------------------------
# 0. Build.
# ------------------------------------------------------------------------------------------------

if [[ -z "${QUICKSTART_NO_BUILD:-}" ]]; then
    step "Build the release binaries (log-server, ledger, idprover, auditor, monitor)"
    run cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" \
        -p log-server -p ledger-cli -p idprover -p auditor -p monitor
fi
for b in log-server ledger idprover auditor monitor; do
    [[ -x $BIN/$b ]] || fail "$BIN/$b is missing: build with cargo build --release"
done
export PATH="$BIN:$PATH"
SECONDS=0
cd "$WORK"
echo "working in $WORK"

# ------------------------------------------------------------------------------------------------
# 1. The log.
# ------------------------------------------------------------------------------------------------

step "Start the log (a Merkle append-only log of signed claims)"
spawn log log-server --data "$WORK/log" --listen 127.0.0.1:0 --origin quickstart.example/log
LOG_PID=$LAST_PID
LOG_ADDR=$(wait_listening log)
LOG=http://$LOG_ADDR
LOG_VKEY=$(sed -n 's/^vkey //p' "$WORK/log.out")
echo "log at $LOG, key $LOG_VKEY"

# ------------------------------------------------------------------------------------------------
# 2. Three auditors, witnessing the log (quorum 2).
# ------------------------------------------------------------------------------------------------

step "Start three auditors: each cosigns every checkpoint consistent with what it saw before"
ORIGIN_HEX=$(printf '%s' quickstart.example/log | sha256sum | cut -d' ' -f1)
AUDITORS=()
WITNESS_VKEYS=()
for i in 1 2 3; do
    mkdir -p "$WORK/auditor$i"
    WITNESS_VKEYS+=("$(run auditor keygen --name "auditor-$i.example" --out "$WORK/auditor$i/witness.key")")
    cat >"$WORK/auditor$i/auditor.toml" <<EOF
state_dir = "state"
key_file = "witness.key"
poll_interval_ms = 300

[[log]]
origin = "quickstart.example/log"
vkey = "$LOG_VKEY"
hash = "blake3"
url = "$LOG"

[alerts]
stdout = true
EOF
    spawn "auditor$i" auditor --config "$WORK/auditor$i/auditor.toml" --listen 127.0.0.1:0
    AUDITORS+=("http://$(wait_listening "auditor$i")")
done
echo "auditors at ${AUDITORS[*]}"

# When the log-server can ask witnesses itself (`--witness URL=VKEY --quorum N`), restart it so
# (on the same port and data folder) so that its checkpoints carry the cosignatures and `ledger
# lookup` checks the quorum. Otherwise the auditors witness by polling the log, and the sender
# asks them (below).
LOG_WITNESSES=0
if log-server --help 2>/dev/null | grep -q -- '--witness'; then
    step "Restart the log so that it collects 2 of 3 witness cosignatures on every checkpoint"
    kill "$LOG_PID"
    wait "$LOG_PID" 2>/dev/null || true
    WARGS=()
    for i in 0 1 2; do WARGS+=(--witness "${AUDITORS[$i]}=${WITNESS_VKEYS[$i]}"); done
    : >"$WORK/log.out"
    spawn log log-server --data "$WORK/log" --listen "$LOG_ADDR" "${WARGS[@]}" --quorum 2
    LOG_PID=$LAST_PID
    wait_listening log >/dev/null
    LOG_WITNESSES=1
fi

# ------------------------------------------------------------------------------------------------
# 3. Keys and enrollment.
# ------------------------------------------------------------------------------------------------

step "Create keys for two honest MSPs, one rogue MSP and the identity prover"
for n in msp-a.example msp-b.example rogue.example prover.example; do
    run ledger keygen --name "$n" --out "$n.key" >"$n.vkey"
    echo "  $(cat "$n.vkey")"
done
cp "$WORK/log/admin.token" admin.token

step "Trust the log (trust on first use) and enroll the four keys with the admin token"
run ledger trust init --log "$LOG"
for n in msp-a.example msp-b.example rogue.example; do
    expect "enrolled msp $n" -- ledger enroll --admin-token-file admin.token --role msp --name "$n" --vkey "$n.vkey"
done
expect "enrolled prover prover.example" -- \
    ledger enroll --admin-token-file admin.token --role prover --name prover.example --vkey prover.example.vkey

step "Start the identity prover (one-time codes go to an outbox folder instead of SMS)"
spawn idprover idprover --key prover.example.key --listen 127.0.0.1:0 --outbox "$WORK/outbox"
PROVER=http://$(wait_listening idprover)

# ------------------------------------------------------------------------------------------------
# 4. The monitor, watching Alice's number.
# ------------------------------------------------------------------------------------------------

step "Start a monitor that watches Alice's number: only msp-a.example may claim it"
cat >monitor.toml <<EOF
state_dir = "$WORK/monitor-state"
poll_interval_s = 1

[[log]]
url = "$LOG"
origin = "quickstart.example/log"
vkey = "$LOG_VKEY"
hash = "blake3"

[[watch]]
sii = "tel:+14155550100"
allowed = ["msp-a.example"]

[rules]
unattested_claim = "watched"
trusted_provers = ["prover.example"]

[[sink]]
type = "file"
path = "$WORK/alerts.jsonl"
EOF
spawn monitor monitor --config monitor.toml --no-progress

# ------------------------------------------------------------------------------------------------
# 5. Claims.
# ------------------------------------------------------------------------------------------------

step "Alice proves she holds +1 415 555 0100 (one-time code) and MSP A claims it, tagged Personal"
expect "claim accepted" -- ledger claim --key msp-a.example.key --sii "+1 (415) 555-0100" \
    --ssi mimi://msp-a.example/u/alice --tag Personal --expires 365d \
    --prover "$PROVER" --code-from-outbox "$WORK/outbox" --receipt alice.proof
expect "receipt verified" -- ledger verify-receipt alice.proof --leaf alice.proof.leaf

step "Bob's number reaches him at MSP A (Work) and at MSP B (Personal), both attested"
expect "claim accepted" -- ledger claim --key msp-a.example.key --sii "+1 (415) 555-0199" \
    --ssi mimi://msp-a.example/u/bob --tag Work --prover "$PROVER" --code-from-outbox "$WORK/outbox"
expect "claim accepted" -- ledger claim --key msp-b.example.key --sii "+1 (415) 555-0199" \
    --ssi mimi://msp-b.example/u/bobby --tag Personal --prover "$PROVER" --code-from-outbox "$WORK/outbox"

step "The rogue MSP claims Alice's number for its own user, without any attestation"
expect "claim accepted" -- ledger claim --key rogue.example.key --sii tel:+14155550100 \
    --ssi mimi://rogue.example/u/mallory

# ------------------------------------------------------------------------------------------------
# 6. A sender's verified lookups.
# ------------------------------------------------------------------------------------------------

step "A sender trusts the log, pins the prover's key and looks both numbers up (verified answers)"
mkdir -p sender
run ledger --trust sender/trust.toml trust init --log "$LOG" --prover-key "$(cat prover.example.vkey)"
if [[ $LOG_WITNESSES -eq 1 ]]; then
    grep -q '^quorum = 2' sender/trust.toml || fail "the log's /v1/info should publish quorum 2"
    echo "(the log publishes witness cosignatures: every lookup below requires 2 of the 3)"
fi
# With `ledger lookup --audit URL` (when this client has it) the sender also asks an auditor
# whether the checkpoint it verified is the one everybody else sees.
AUDIT=()
if ledger lookup --help 2>/dev/null | grep -q -- '--audit'; then AUDIT=(--audit "${AUDITORS[0]}"); fi
expect "mapped (verified" "msp-a.example" "rogue.example" -- \
    ledger --trust sender/trust.toml lookup "+1 (415) 555-0100" "${AUDIT[@]}"
expect "mapped (verified" "mimi://msp-a.example/u/bob" "mimi://msp-b.example/u/bobby" -- \
    ledger --trust sender/trust.toml lookup "+1 (415) 555-0199"

step "A stricter sender requires attestations: the rogue mapping makes it reject the answer"
mkdir -p strict
run ledger --trust strict/trust.toml trust init --log "$LOG" --prover-key "$(cat prover.example.vkey)" \
    --require-attestation >/dev/null
expect "VERIFICATION FAILED" "claim without the attestation this client requires" -- \
    ledger --trust strict/trust.toml lookup tel:+14155550100
[[ $LAST_STATUS -eq 2 ]] || fail "a rejected lookup exits 2 (got $LAST_STATUS)"
expect "mapped (verified" -- ledger --trust strict/trust.toml lookup tel:+14155550199

step "The auditors cosigned the log's checkpoint; each confirms the sender's view is consistent"
CP_SIZE=$(curl -s "$LOG/checkpoint" | sed -n 2p)
for a in "${AUDITORS[@]}"; do
    for ((i = 0; i < 100; i++)); do
        size=$(curl -s "$a/$ORIGIN_HEX/checkpoint" | sed -n 2p)
        [[ "$size" == "$CP_SIZE" ]] && break
        sleep 0.1
    done
    [[ "$size" == "$CP_SIZE" ]] || fail "auditor $a did not cosign size $CP_SIZE (has ${size:-none})"
done
curl -s "$LOG/checkpoint" >seen.checkpoint
for a in "${AUDITORS[@]}"; do
    expect '"verdict":"consistent"' -- curl -s -H 'Content-Type: text/plain' \
        --data-binary @seen.checkpoint "$a/v1/audit"
done
echo "$(printf '%s\n' "${AUDITORS[@]}" | wc -l) of 3 auditors cosigned size $CP_SIZE (quorum 2 met)"
printf '$ curl -s %s/%s/checkpoint\n' "${AUDITORS[0]}" "$ORIGIN_HEX"
curl -s "${AUDITORS[0]}/$ORIGIN_HEX/checkpoint" | sed 's/^/  /'

# ------------------------------------------------------------------------------------------------
# 7. The monitor's alerts.
# ------------------------------------------------------------------------------------------------

step "The monitor raises unexpected-claimant and unattested-claim for the rogue claim"
for ((i = 0; i < 300; i++)); do
    if grep -q '"unexpected-claimant"' alerts.jsonl 2>/dev/null &&
        grep -q '"unattested-claim"' alerts.jsonl 2>/dev/null; then
        break
    fi
    sleep 0.1
done
printf '$ cat alerts.jsonl\n'
sed 's/^/  /' alerts.jsonl 2>/dev/null || true
grep '"unexpected-claimant"' alerts.jsonl 2>/dev/null | grep -q rogue.example \
    || fail "no unexpected-claimant alert for rogue.example"
grep '"unattested-claim"' alerts.jsonl 2>/dev/null | grep -q rogue.example \
    || fail "no unattested-claim alert for rogue.example"

# ------------------------------------------------------------------------------------------------
# 8. Opt-out.
# ------------------------------------------------------------------------------------------------

step "Alice opts out (through the prover, with a fresh one-time code); lookups now say so"
expect "optout accepted" -- ledger optout --key prover.example.key --sii "+1 (415) 555-0100" \
    --prover "$PROVER" --code-from-outbox "$WORK/outbox"
expect "opted out" -- ledger --trust sender/trust.toml lookup "+1 (415) 555-0100"

step "Done in ${SECONDS} s: every outcome was as expected"
