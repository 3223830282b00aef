#!/usr/bin/env bash
# The real program on four hosts: network namespaces on one bridge
# (198.18.0.0/24), dist/peer.js in each as its own process, bootstrapped to
# the first. A submit from the root namespace; one worker SIGKILLed mid-job,
# another's link cut and brought back. The output must equal --local's.
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

log() { printf '%s netns: %s\n' "$(date +%H:%M:%S)" "$*"; }
fail() { log "FAILED: $*"; for i in 1 2 3 4; do [[ -f "$WORK/p$i.log" ]] && { echo "--- peer $i"; tail -n 15 "$WORK/p$i.log"; }; done; [[ -f "$WORK/submit.log" ]] && { echo "--- submit"; tail -n 15 "$WORK/submit.log"; }; exit 1; }

cleanup() {
  set +e
  [[ -n "$SUBMIT_PID" ]] && kill "$SUBMIT_PID" 2>/dev/null
  # Peers leave as users stop them (SIGTERM: leases handed back), then anything left is killed.
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
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
    last=$(grep -oE 'progress [0-9]+/[0-9]+' "$WORK/submit.log" | tail -n 1 | awk '{print $2}')
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
  local i=$1 args=(--listen "/ip4/198.18.0.$1/tcp/4001" --data-dir "$WORK/data$1" --slots 1 --tile-size 128 --lease-ms 2000)
  [[ $# -gt 1 ]] && args+=(--bootstrap "$2")
  ip netns exec "${TAG}h$i" "$NODE" dist/peer.js "${args[@]}" >"$WORK/p$i.log" 2>&1 &
  PIDS[$i]=$!
}

start_peer 1
BOOT=$(wait_line "$WORK/p1.log" '^listening on /ip4/198.18.0.1/' 20 | awk '{print $3}') || fail "peer 1 did not start"
log "peer 1: $BOOT"
for i in 2 3 4; do start_peer "$i" "$BOOT"; done
for i in 2 3 4; do wait_line "$WORK/p$i.log" 'peer joined' 20 >/dev/null || fail "peer $i did not join"; done
log "peers 2-4 joined"

"$NODE" dist/peer.js submit --local --ops "$OPS" -i "$INPUT" -o "$WORK/local.png" >/dev/null 2>&1 || fail "local reference failed"

log "submitting $INPUT with $OPS from the root namespace"
timeout "$LIMIT_S" "$NODE" dist/peer.js submit --peer "$BOOT" --ops "$OPS" -i "$INPUT" -o "$WORK/swarm.png" >"$WORK/submit.log" 2>&1 &
SUBMIT_PID=$!

wait_progress 15 "$LIMIT_S" || fail "the job did not reach 15%"
log "SIGKILL peer 3 (pid ${PIDS[3]})"
kill -9 "${PIDS[3]}"
wait "${PIDS[3]}" 2>/dev/null || true
wait_progress 30 "$LIMIT_S" || fail "the job did not reach 30% after the kill"
log "link of peer 4 down"
ip -n "${TAG}h4" link set eth0 down
wait_progress 55 "$LIMIT_S" || fail "the job did not reach 55% with peer 4 cut off"
log "link of peer 4 up again"
ip -n "${TAG}h4" link set eth0 up

wait "$SUBMIT_PID" || fail "submit exited with $?"
SUBMIT_PID=""
grep -E '^wrote ' "$WORK/submit.log" || true
cmp -s "$WORK/swarm.png" "$WORK/local.png" || fail "swarm output differs from the local reference"
grep -hE 'leases expired|done in' "$WORK/p1.log" | tail -n 1 || true
log "PASSED: output equals the local reference, byte for byte"
