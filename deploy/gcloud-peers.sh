#!/usr/bin/env bash
# An example scale hook for Google Compute Engine, with the same contract as
# deploy/local-peers.sh: not run by the tests (they cannot reach a cloud).
# Adapt the machine type, image, zone and network to yours; the AWS and Azure
# CLIs follow the same pattern (see docs/operating.md, "Scaling out").
#
#   tileswarm --scale-out "deploy/gcloud-peers.sh up" --scale-in "deploy/gcloud-peers.sh down" \
#     --announce /ip4/<this machine's address>/tcp/4001
#
# up    makes $TILESWARM_SCALE_COUNT VMs. Each peer's identity key is made here
#       first, so its peer id is known before it starts: down deletes VMs by the
#       ids the peer names. The VM's startup script installs tileswarm and runs
#       it with --bootstrap $TILESWARM_BOOTSTRAP and --scaled-by $TILESWARM_SCALED_BY.
#       The key (and a private swarm's key) travel in the VM's metadata: anyone
#       who can read the project's metadata can take them. It prints the ids
#       (the scaler counts them until scale-in stops them).
# down  deletes the VMs of the peers $TILESWARM_SCALE_PEERS names.
#
# TILESWARM_GCLOUD_STATE  where peer ids are mapped to VM names (default ~/.tileswarm-gcloud)
# TILESWARM_GCLOUD_ZONE, TILESWARM_GCLOUD_MACHINE  (default europe-west1-b, e2-standard-8)
set -euo pipefail
trap '' PIPE
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state=${TILESWARM_GCLOUD_STATE:-$HOME/.tileswarm-gcloud}
zone=${TILESWARM_GCLOUD_ZONE:-europe-west1-b}
machine=${TILESWARM_GCLOUD_MACHINE:-e2-standard-8}
mkdir -p "$state"

up () {
  : "${TILESWARM_SCALE_COUNT:?}" "${TILESWARM_BOOTSTRAP:?}" "${TILESWARM_SCALED_BY:?}"
  for _ in $(seq "$TILESWARM_SCALE_COUNT"); do
    local dir id name
    dir=$(mktemp -d)
    id=$("$repo/node_modules/.bin/node" "$repo/dist/peer.js" id --data-dir "$dir")
    name="tileswarm-$(date +%s)-$RANDOM"
    # Written first: a hook killed while the VM is made leaves one that down can still delete.
    echo "$name" > "$state/$id"
    # The VM: tileswarm from this repository's origin (with the Node 24 it brings), the key, and the peer as a service (deploy/tileswarm.service).
    cat > "$dir/startup.sh" <<STARTUP
#!/bin/bash
set -e
apt-get update && apt-get install -y git curl libjemalloc2
curl -fsSL https://deb.nodesource.com/setup_24.x | bash - && apt-get install -y nodejs
useradd --system --home /var/lib/tileswarm tileswarm || true
# The command, installed where the unit runs it (/usr/local/bin/tileswarm): the package packed from the clone (npm pack builds it).
git clone $(git -C "$repo" remote get-url origin) /opt/tileswarm && cd /opt/tileswarm && npm ci && npm install -g --prefix /usr/local "$(npm pack --silent)"
install -d -o tileswarm -m 700 /var/lib/tileswarm
mkdir -p /etc/tileswarm
printf 'TILESWARM_BOOTSTRAP=%s\nTILESWARM_SCALED_BY=%s\nTILESWARM_LISTEN=/ip4/0.0.0.0/tcp/4001\n' '$TILESWARM_BOOTSTRAP' '$TILESWARM_SCALED_BY' > /etc/tileswarm/tileswarm.env
curl -fsH 'Metadata-Flavor: Google' http://metadata.google.internal/computeMetadata/v1/instance/attributes/tileswarm-key | base64 -d > /var/lib/tileswarm/peer.key
chown tileswarm /var/lib/tileswarm/peer.key && chmod 600 /var/lib/tileswarm/peer.key
if curl -fsH 'Metadata-Flavor: Google' http://metadata.google.internal/computeMetadata/v1/instance/attributes/tileswarm-swarm-key | base64 -d > /tmp/swarm.key; then
  install -o tileswarm -m 600 /tmp/swarm.key /var/lib/tileswarm/swarm.key && echo TILESWARM_SWARM_KEY=/var/lib/tileswarm/swarm.key >> /etc/tileswarm/tileswarm.env
fi
cp deploy/tileswarm.service /etc/systemd/system/ && systemctl daemon-reload && systemctl enable --now tileswarm
STARTUP
    gcloud compute instances create "$name" --zone "$zone" --machine-type "$machine" \
      --image-family debian-12 --image-project debian-cloud \
      --metadata "tileswarm-key=$(base64 -w0 "$dir/peer.key")${TILESWARM_SWARM_KEY:+,tileswarm-swarm-key=$(base64 -w0 "$TILESWARM_SWARM_KEY")}" \
      --metadata-from-file startup-script="$dir/startup.sh" > /dev/null
    rm -rf "$dir"
    echo "created $name for peer $id" 2> /dev/null || true
  done
}

down () {
  local failed=0
  for id in ${TILESWARM_SCALE_PEERS:?}; do
    [[ -f "$state/$id" ]] || { echo "no VM of peer $id here" >&2; continue; }
    # One that will not go is said, and the rest are still deleted.
    if gcloud compute instances delete "$(cat "$state/$id")" --zone "$zone" --quiet > /dev/null; then
      rm -f "$state/$id"
      echo "deleted the VM of peer $id" 2> /dev/null || true
    else
      echo "could not delete the VM of peer $id ($(cat "$state/$id"))" >&2
      failed=1
    fi
  done
  return "$failed"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down (run by a peer's --scale-out and --scale-in)" >&2; exit 2 ;;
esac
