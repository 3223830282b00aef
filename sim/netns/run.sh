#!/usr/bin/env bash
# The real program on four hosts: network namespaces on one bridge
# (198.18.0.0/24), dist/peer.js in each as its own process, bootstrapped to
# the first, with leases of a minute (nothing may wait for one). Submits from
# the root namespace, three jobs:
#   1. a worker SIGKILLed mid-job, another's link cut and brought back;
#   2. the coordinator SIGKILLed at half the job: the client resumes elsewhere;
#   3. a worker SIGSTOPped, then the coordinator SIGTERMed at half the job.
# Each output must equal --local's, and each submit must exit 0 by itself.
# Everything made here is removed on any exit. Needs root and iproute2.
set -euo pipefail
cd "$(dirname "$0")/../.."

# Not $NODE: npm sets that to the Node running npm itself (20 here), not the one on PATH.
NODE=${TILESWARM_NODE:-$(command -v node)}
LIMIT_S=${NETNS_LIMIT_S:-240}
OPS=${NETNS_OPS:-median:size=15,median:size=15,median:size=15,median:size=15,median:size=15,median:size=15}
INPUT=sim/samples/saw.jpg
TAG="tsw$$"
BR="${TAG}br"
WORK=$(mktemp -d /tmp/tileswarm-netns.XXXXXX)
PIDS=()
SUBMIT_PID=""
SUBMIT_LOG=""
declare -A ADDR

log() { printf '%s netns: %s\n' "$(date +%H:%M:%S)" "$*"; }
fail() { log "FAILED: $*"; for i in 1 2 3 4; do [[ -f "$WORK/p$i.log" ]] && { echo "--- peer $i"; tail -n 15 "$WORK/p$i.log"; }; done; [[ -n "$SUBMIT_LOG" && -f "$SUBMIT_LOG" ]] && { echo "--- submit"; tail -n 15 "$SUBMIT_LOG"; }; exit 1; }

cleanup() {
  set +e
  [[ -n "$SUBMIT_PID" ]] && kill "$SUBMIT_PID" 2>/dev/null
  # Peers leave as users stop them (SIGTERM: leases handed back), then anything left is killed.
  for pid in "${PIDS[@]}"; do kill -CONT "$pid" 2>/dev/null; kill -TERM "$pid" 2>/dev/null; done
  for _ in $(seq 50); do
    local alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null; done
  wait 2>/dev/null
  for i in 1 2 3 4; do
    ip netns pids "${TAG}h$i" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip link del "${TAG}v$i" 2>/dev/null
    ip netns del "${TAG}h$i" 2>/dev/null
  done
  ip link del "$BR" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ $(id -u) -eq 0 ]] || { echo "netns test: needs root (ip netns); skipped"; exit 1; }
command -v ip >/dev/null || { echo "netns test: needs iproute2 (apt-get install iproute2)"; exit 1; }
[[ -f dist/peer.js ]] || { echo "netns test: run npm run build first"; exit 1; }

# Waits (bounded) until a file has a line matching a pattern; prints the line.
wait_line() { # file pattern seconds
  local deadline=$((SECONDS + $3))
  while ((SECONDS < deadline)); do
    if [[ -f "$1" ]] && grep -m1 -E "$2" "$1"; then return 0; fi
    grep -q '^tileswarm: ' "$1" 2>/dev/null && return 1
    sleep 0.1
  done
  return 1
}

# The submit prints "progress N/M tiles"; waits until N/M reaches a percentage.
wait_progress() { # percent seconds
  local deadline=$((SECONDS + $2))
  while ((SECONDS < deadline)); do
    local last
    last=$(grep -oE 'progress [0-9]+/[0-9]+' "$SUBMIT_LOG" | tail -n 1 | awk '{print $2}')
    if [[ -n "$last" ]] && (( ${last%/*} * 100 >= $1 * ${last#*/} )); then return 0; fi
    kill -0 "$SUBMIT_PID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

log "bridge $BR 198.18.0.254/24 and four hosts 198.18.0.1-4"
ip link add "$BR" type bridge
ip addr add 198.18.0.254/24 dev "$BR"
ip link set "$BR" up
for i in 1 2 3 4; do
  ns="${TAG}h$i"
  ip netns add "$ns"
  ip link add "${TAG}v$i" type veth peer name eth0 netns "$ns"
  ip link set "${TAG}v$i" master "$BR" up
  ip -n "$ns" addr add "198.18.0.$i/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
done

start_peer() { # i [bootstrap]
  # Tiled whatever the cost model says: the test is about the tiles of peers that fail.
  local i=$1 args=(--listen "/ip4/198.18.0.$1/tcp/4001" --data-dir "$WORK/data$1" --slots 1 --tile-size 128 --lease-ms 60000 --spread always)
  [[ $# -gt 1 ]] && args+=(--bootstrap "$2")
  ip netns exec "${TAG}h$i" "$NODE" dist/peer.js "${args[@]}" >"$WORK/p$i.log" 2>&1 &
  PIDS[$i]=$!
}

# Starts a job on peer i from the root namespace; its log is $SUBMIT_LOG. Each
# job gets its own tile size: the same job again would be served from the
# results workers kept of the last one.
submit_to() { # i name tile-size
  SUBMIT_LOG="$WORK/submit-$2.log"
  log "$2: submitting $INPUT with $OPS to peer $1, tiles of $3 px"
  JOB_STARTED=$SECONDS
  timeout "$LIMIT_S" "$NODE" dist/peer.js submit --peer "${ADDR[$1]}" --ops "$OPS" --tile-size "$3" -i "$INPUT" -o "$WORK/$2.png" >"$SUBMIT_LOG" 2>&1 &
  SUBMIT_PID=$!
}

# Waits for the job to end by itself; its output must equal the reference.
finish_job() { # name
  wait "$SUBMIT_PID" || fail "$1: submit exited with $?"
  SUBMIT_PID=""
  grep -hE '^(wrote |coordinator .* lost|resuming|[0-9]+ of [0-9]+ tiles recovered)' "$SUBMIT_LOG" || true
  cmp -s "$WORK/$1.png" "$WORK/local.png" || fail "$1: swarm output differs from the local reference"
  log "$1: PASSED in $((SECONDS - JOB_STARTED)) s: output equals the local reference, byte for byte"
}

sig() { # signal i
  log "SIG$1 peer $2 (pid ${PIDS[$2]})"
  kill "-$1" "${PIDS[$2]}"
}

start_peer 1
BOOT=$(wait_line "$WORK/p1.log" '^listening on /ip4/198.18.0.1/' 20 | awk '{print $3}') || fail "peer 1 did not start"
ADDR[1]=$BOOT
log "peer 1: $BOOT"
for i in 2 3 4; do start_peer "$i" "$BOOT"; done
for i in 2 3 4; do
  ADDR[$i]=$(wait_line "$WORK/p$i.log" '^listening on /ip4/198.18.0.' 20 | awk '{print $3}') || fail "peer $i did not start"
  wait_line "$WORK/p$i.log" 'peer joined' 20 >/dev/null || fail "peer $i did not join"
done
log "peers 2-4 joined"

"$NODE" dist/peer.js submit --local --ops "$OPS" -i "$INPUT" -o "$WORK/local.png" >/dev/null 2>&1 || fail "local reference failed"

submit_to 1 workers 128
wait_progress 15 "$LIMIT_S" || fail "the job did not reach 15%"
sig KILL 3
wait "${PIDS[3]}" 2>/dev/null || true
wait_progress 30 "$LIMIT_S" || fail "the job did not reach 30% after the kill"
log "link of peer 4 down"
ip -n "${TAG}h4" link set eth0 down
wait_progress 55 "$LIMIT_S" || fail "the job did not reach 55% with peer 4 cut off"
log "link of peer 4 up again"
ip -n "${TAG}h4" link set eth0 up
finish_job workers

log "peer 3 back"
start_peer 3 "$BOOT"
wait_line "$WORK/p3.log" 'back in the swarm|peer joined' 30 >/dev/null || fail "peer 3 did not rejoin"
submit_to 2 coordinator-killed 112
wait_progress 50 "$LIMIT_S" || fail "the job did not reach 50%"
sig KILL 2
wait "${PIDS[2]}" 2>/dev/null || true
finish_job coordinator-killed
grep -qE '^[0-9]+ of [0-9]+ tiles recovered' "$SUBMIT_LOG" || fail "coordinator-killed: nothing recovered"

log "peer 2 back"
start_peer 2 "$BOOT"
wait_line "$WORK/p2.log" 'back in the swarm|peer joined' 30 >/dev/null || fail "peer 2 did not rejoin"
submit_to 3 coordinator-left 96
wait_progress 20 "$LIMIT_S" || fail "the job did not reach 20%"
sig STOP 4
wait_progress 50 "$LIMIT_S" || fail "the job did not reach 50% with peer 4 stopped"
sig TERM 3
finish_job coordinator-left
grep -qE '^[0-9]+ of [0-9]+ tiles recovered' "$SUBMIT_LOG" || fail "coordinator-left: nothing recovered"
(( SECONDS - JOB_STARTED < 60 )) || fail "coordinator-left: the job waited for the stopped peer's one-minute leases"
kill -CONT "${PIDS[4]}"
log "PASSED: three jobs, each equal to the local reference, byte for byte"
