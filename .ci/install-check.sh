#!/usr/bin/env bash
# The command people install: pack the package, install the tarball into a
# temporary prefix with this machine's npm (whatever its node), and use the
# `tileswarm` it puts on PATH from another folder: --version, a peer, an image
# submitted to it (found as the peer on this machine), status, a clean stop.
# Every wait is bounded. Usage: .ci/install-check.sh [unit-file-to-verify]
set -euo pipefail
unit_src=
[[ $# -gt 0 ]] && unit_src=$(realpath "$1")
cd "$(dirname "$0")/.."
repo=$PWD
work=$(mktemp -d)
peer=
cleanup() {
  [[ -n "$peer" ]] && kill "$peer" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "install check: $*" >&2; [[ -f "$work/peer.err" ]] && tail -5 "$work/peer.err" >&2; exit 1; }

timeout 300 npm pack --silent --pack-destination "$work" >/dev/null
tarball=$(ls "$work"/tileswarm-*.tgz)
listed=$(tar -tzf "$tarball" | sed 's|^package/||' | cut -d/ -f1 | sort -u | tr '\n' ' ')
[[ "$listed" == "LICENSE README.md bin deploy dist docs package.json " ]] || fail "the package holds $listed"
started=$SECONDS
timeout 600 npm install -g --prefix "$work/prefix" --no-audit --no-fund "$tarball" >"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "npm install -g of the tarball failed"; }
echo "install check: npm install -g of $(basename "$tarball") took $((SECONDS - started)) s"

export PATH="$work/prefix/bin:$PATH"
export TILESWARM_DATA_DIR="$work/data"
mkdir "$work/elsewhere" && cd "$work/elsewhere"
[[ "$(command -v tileswarm)" == "$work/prefix/bin/tileswarm" ]] || fail "tileswarm is not the installed command"
echo "install check: $(timeout 60 tileswarm --version) run by $(node --version 2>/dev/null || echo 'no node on PATH') on PATH"

# The library on an old Node: one line, not a SyntaxError.
if [[ -x /usr/bin/node && "$(/usr/bin/node -p 'process.versions.node.split(".")[0] < 22')" == true ]]; then
  out=$(/usr/bin/node -e "import('$work/prefix/lib/node_modules/tileswarm/dist/index.js').catch(e => { console.log(e.message); process.exit(3) })" 2>&1) && fail "the library loaded on $(/usr/bin/node --version)"
  [[ "$out" == "tileswarm needs Node.js 22 or newer"* ]] || fail "the library on an old Node said: $out"
fi

tileswarm peer --listen /ip4/127.0.0.1/tcp/0 --http off --slots 1 >"$work/peer.out" 2>"$work/peer.err" &
peer=$!
for _ in $(seq 300); do grep -q '^listening on' "$work/peer.out" && break; kill -0 "$peer" 2>/dev/null || fail "the peer ended"; sleep 0.2; done
grep -q '^listening on' "$work/peer.out" || fail "the peer did not listen within 60 s"
[[ -f "$work/data/listening.json" ]] || fail "the peer did not record where it listens"
# Where the system has jemalloc (CI installs it), the installed command runs its peer on it.
if [[ -e /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 ]]; then
  for _ in $(seq 50); do grep -q ' up: ' "$work/peer.out" && break; sleep 0.2; done
  grep -q ' up: .*, jemalloc malloc, ' "$work/peer.out" || fail "the peer does not run on jemalloc: $(grep ' up: ' "$work/peer.out")"
fi

timeout 120 tileswarm submit -i "$repo/test/fixtures/flowers.jpeg" --ops 'blur:sigma=2' -o out.png >submit.out 2>submit.err || { cat submit.err; fail "submit failed"; }
[[ "$(head -c 8 out.png | od -An -tx1 | tr -d ' \n')" == 89504e470d0a1a0a ]] || fail "out.png is not a PNG"
timeout 60 tileswarm status >status.out || fail "status failed"
grep -q "^peer $(timeout 60 tileswarm id)" status.out || fail "status did not show the peer"

kill -TERM "$peer"
for _ in $(seq 150); do kill -0 "$peer" 2>/dev/null || break; sleep 0.2; done
kill -0 "$peer" 2>/dev/null && fail "the peer did not stop within 30 s of SIGTERM"
wait "$peer" || fail "the peer exited $? on SIGTERM"
peer=
[[ ! -f "$work/data/listening.json" ]] || fail "the stopped peer left its record"
timeout 60 tileswarm status 2>status.err && fail "status found a peer after it stopped"
grep -q '^tileswarm: no peer runs on this machine' status.err || fail "status with no peer said: $(cat status.err)"
echo "install check: tileswarm installed, run from another folder: a peer ($(grep -o "[a-z]* malloc" "$work/peer.out" | head -1)), an image submitted to it, status, a clean stop"

# The systemd unit, its ExecStart pointed at the installed command: any complaint fails.
if [[ -n "$unit_src" ]]; then
  unit=$work/tileswarm.service
  sed "s|/usr/local/bin/tileswarm|$work/prefix/bin/tileswarm|g" "$unit_src" >"$unit"
  complaints=$(systemd-analyze verify "$unit" 2>&1) || { echo "$complaints"; exit 1; }
  [[ -z "$complaints" ]] || { echo "deploy/tileswarm.service: $complaints"; exit 1; }
  echo "deploy/tileswarm.service: systemd-analyze verify is content"
fi
