#!/usr/bin/env bash
# A/B: two openqps builds loaded at once, side by side, on one core.
#   bench/ab.sh A_TREE B_TREE
# A_TREE and B_TREE are source trees (a worktree, or `git archive` of a
# commit). Both builds forward to one back end; the back end and both
# openqps share core 0, and one wrk per build runs on core 1, both at once,
# for ROUNDS rounds of DURATION. Each round prints the CPU time each openqps
# spent per request it answered, and B ÷ A; the last line is the median
# ratio. Loading both at once means machine noise hits both alike; compare
# the ratio, not the absolute figures.
#   A_YAML / B_YAML: extra top-level configuration for one build, e.g.
#   B_YAML='transport: {upstream: net/http}'
# Traffic goes to 127.0.0.1 only; every wrk run is bounded by DURATION.
set -euo pipefail
A=$(realpath "$1"); B=$(realpath "$2")
ROUNDS=${ROUNDS:-6}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-16}
cd "$(dirname "$0")/.."
for cmd in wrk taskset python3; do
  command -v $cmd >/dev/null || { echo "bench/ab.sh needs $cmd (see bench/run.sh)" >&2; exit 1; }
done

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
waitport() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

go build -o "$tmp/backend" ./bench/backend
BP=$(freeport)
taskset -c 0 "$tmp/backend" -addr 127.0.0.1:$BP &
pids+=($!)
waitport $BP

SID=benchsession0123456789abcdef0123
declare -A OQ HP
for side in A B; do
  tree=${!side}
  (cd "$tree" && go build -o "$tmp/openqps-$side" ./cmd/openqps)
  "$tmp/openqps-$side" certs --data-dir "$tmp/data-$side" >/dev/null
  HP[$side]=$(freeport); FP=$(freeport); AP=$(freeport)
  extra=${side}_YAML
  cat > "$tmp/$side.yaml" <<YAML
data_dir: $tmp/data-$side
frontend: {listen: "127.0.0.1:$FP", http_listen: "127.0.0.1:${HP[$side]}"}
api: {listen: "127.0.0.1:$AP"}
store: {type: memory}
log: {level: warn}
${!extra:-}
virtual_proxies:
  - prefix: bench
    backends: ["http://127.0.0.1:$BP"]
YAML
  taskset -c 0 "$tmp/openqps-$side" serve --config "$tmp/$side.yaml" >"$tmp/$side.out" 2>"$tmp/$side.log" &
  OQ[$side]=$!; pids+=($!)
  waitport $AP; waitport ${HP[$side]}
  "$tmp/openqps-$side" session add --api https://127.0.0.1:$AP --certs "$tmp/data-$side/certs" --vp bench --user 'BENCH\user1' \
    --attr Group=A --attr Group=B --id $SID >/dev/null
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: X-Qlik-Session-bench-HTTP=$SID" "http://127.0.0.1:${HP[$side]}/bench/hub/")
  [ "$code" = 200 ] || { echo "build $side answered $code, not 200: see $tmp/$side.log" >&2; cat "$tmp/$side.log" >&2; exit 1; }
done
ticks() { awk '{print $14+$15}' /proc/$1/stat; }
hz=$(getconf CLK_TCK)

ratios=()
for r in $(seq "$ROUNDS"); do
  a0=$(ticks ${OQ[A]}); b0=$(ticks ${OQ[B]})
  wrks=()
  for side in A B; do
    taskset -c 1 wrk -t1 -c"$CONNS" -d"$DURATION" -H "Cookie: X-Qlik-Session-bench-HTTP=$SID" \
      "http://127.0.0.1:${HP[$side]}/bench/hub/" >"$tmp/wrk-$side" &
    wrks+=($!)
  done
  wait "${wrks[@]}"
  a1=$(ticks ${OQ[A]}); b1=$(ticks ${OQ[B]})
  na=$(awk '/requests in/ {print $1}' "$tmp/wrk-A"); nb=$(awk '/requests in/ {print $1}' "$tmp/wrk-B")
  line=$(python3 -c "
a=($a1-$a0)/$hz/$na*1e6; b=($b1-$b0)/$hz/$nb*1e6
print(f'round $r: A {a:.1f} µs/req ({$na} req), B {b:.1f} µs/req ({$nb} req), B/A {b/a:.3f}')
print(f'{b/a:.4f}')")
  echo "$line" | head -1
  ratios+=("$(echo "$line" | tail -1)")
done
python3 -c "
import statistics; r=[float(x) for x in '${ratios[*]}'.split()]
print(f'B/A per round: {\" \".join(f\"{x:.3f}\" for x in r)}; median {statistics.median(r):.3f}, range {min(r):.3f}-{max(r):.3f}')"
