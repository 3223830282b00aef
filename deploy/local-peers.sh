#!/usr/bin/env bash
# A scale hook that starts and stops tileswarm peers as processes on this
# machine: what the tests use, and the pattern for a real hook, which creates
# and deletes machines instead (see docs/operating.md, "Scaling out").
#
#   tileswarm --scale-out "deploy/local-peers.sh up" --scale-in "deploy/local-peers.sh down"
#
# up    starts $TILESWARM_SCALE_COUNT peers that join through $TILESWARM_BOOTSTRAP,
#       each with a data dir of its own, named by its peer id, and prints their ids.
#       They get TILESWARM_SCALED_BY (and TILESWARM_SWARM_KEY) from the environment,
#       as the peer that runs this hook sets them.
# down  stops the peers $TILESWARM_SCALE_PEERS names (SIGINT: they hand their
#       leases back), and removes their data dirs.
#
# TILESWARM_LOCAL_PEERS_DIR  where the peers' data dirs and logs go (default $TMPDIR/tileswarm-local-peers)
# TILESWARM_LOCAL_PEER       the command that runs a peer (default: this repository's built peer)
# TILESWARM_LOCAL_SLOTS      slots each peer computes with (default 1: they share this machine)
set -euo pipefail
# The peer that runs this may be gone before it ends (it stops, and scales in on its way out): saying what was done must not stop the doing.
trap '' PIPE
say () { echo "$@" 2> /dev/null || true; }
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${TILESWARM_LOCAL_PEERS_DIR:-${TMPDIR:-/tmp}/tileswarm-local-peers}
read -r -a peer <<< "${TILESWARM_LOCAL_PEER:-$repo/node_modules/.bin/node $repo/dist/peer.js}"
mkdir -p "$dir"

up () {
  local count=${TILESWARM_SCALE_COUNT:?TILESWARM_SCALE_COUNT: how many peers to start}
  : "${TILESWARM_BOOTSTRAP:?TILESWARM_BOOTSTRAP: the peer to join through}"
  local ids=() data id
  for _ in $(seq "$count"); do
    data=$(mktemp -d "$dir/new-XXXXXX")
    # The id first: it names the peer's folder, where down finds it.
    id=$("${peer[@]}" id --data-dir "$data")
    mv "$data" "$dir/$id"
    # Its own session: a hook that is killed for taking too long does not take the peers it started with it.
    setsid "${peer[@]}" --listen /ip4/127.0.0.1/tcp/0 --data-dir "$dir/$id" --http off --slots "${TILESWARM_LOCAL_SLOTS:-1}" > "$dir/$id/log" 2>&1 < /dev/null &
    echo $! > "$dir/$id/pid"
    ids+=("$id")
  done
  # Up when each says where it listens (20 s at most); one that dies first fails the hook, with its last words.
  for id in "${ids[@]}"; do
    for _ in $(seq 200); do
      if grep -q '^listening on ' "$dir/$id/log"; then break; fi
      if ! kill -0 "$(cat "$dir/$id/pid")" 2> /dev/null; then
        echo "peer $id exited at start: $(tail -n 3 "$dir/$id/log" | tr '\n' ' ')" >&2
        exit 1
      fi
      sleep 0.1
    done
    grep -q '^listening on ' "$dir/$id/log" || { echo "peer $id is not listening after 20 s" >&2; exit 1; }
    say "started $id (pid $(cat "$dir/$id/pid"))"
  done
}

down () {
  local id pid pids=() ids=()
  for id in ${TILESWARM_SCALE_PEERS:?TILESWARM_SCALE_PEERS: the ids of the peers to stop}; do
    if [[ ! -f "$dir/$id/pid" ]]; then
      say "no peer $id was started here" >&2
      continue
    fi
    pid=$(cat "$dir/$id/pid")
    # Ours still (a pid may be reused): its command line names its data dir. It leads its own process group (setsid).
    if grep -qF -- "$dir/$id" "/proc/$pid/cmdline" 2> /dev/null; then
      kill -INT -- "-$pid" 2> /dev/null || kill -INT "$pid" 2> /dev/null || true
      pids+=("$pid")
    fi
    ids+=("$id")
  done
  # All at once: each hands its leases back and leaves (15 s at most, then killed).
  for _ in $(seq 150); do
    local left=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2> /dev/null && left=1; done
    [[ $left == 0 ]] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -0 "$pid" 2> /dev/null && kill -KILL -- "-$pid" 2> /dev/null || true; done
  for id in "${ids[@]}"; do
    rm -rf "${dir:?}/$id"
    say "stopped $id"
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down (run by a peer's --scale-out and --scale-in)" >&2; exit 2 ;;
esac
