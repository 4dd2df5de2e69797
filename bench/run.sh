#!/usr/bin/env bash
# The load benchmark (make bench-load). In one run on this machine it starts
# a tiny back end and openqps (and nginx, when installed, as a yardstick),
# creates a session through the trusted API, and measures with wrk:
#   direct      -> the back end over plain HTTP (the limit)
#   openqps     -> through openqps's plain-HTTP front listener, cookie-authenticated
#   direct-tls  -> the back end over HTTPS
#   openqps-tls -> through openqps's HTTPS front end, cookie-authenticated
#   nginx       -> nginx as a plain reverse proxy, no authentication
#   nginx-id    -> nginx adding the six identity and forwarding headers openqps
#                  adds (fixed values): what the back end pays for them
# The servers share core 0 (taskset), wrk runs on core 1. Targets alternate
# over ROUNDS rounds so machine noise hits all alike; the table shows medians.
# Compare ratios, not absolutes: two cores are shared by load and servers.
# Then: session adds/s over the API, openqps memory per open websocket,
# the embedded store's adds/s and restart time with RESTART_SESSIONS (1M),
# and the memory store at scale (RSS, GC cycle, p50/p99 with 1k vs 1M).
# WEBSOCKETS=0, RESTART=0, SCALE=0, APILOAD=0 skip parts.
# Traffic goes to 127.0.0.1 only; every wrk run is bounded by DURATION.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-32}

need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2") >/dev/null
  else
    echo "the benchmark needs $1: sudo apt-get install $2" >&2; exit 1
  fi
}
need wrk wrk
need taskset util-linux
need python3 python3

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
waitport() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

go build -o "$tmp/openqps" ./cmd/openqps
go build -o "$tmp/backend" ./bench/backend
go build -o "$tmp/apiload" ./bench/apiload
go build -o "$tmp/wsload" ./bench/wsload
"$tmp/openqps" certs --data-dir "$tmp/data" >/dev/null
C="$tmp/data/certs"

BP=$(freeport); BTP=$(freeport); FP=$(freeport); HP=$(freeport); AP=$(freeport); NP=$(freeport); NIP=$(freeport)
taskset -c 0 "$tmp/backend" -addr 127.0.0.1:$BP -tls-addr 127.0.0.1:$BTP -tls-cert "$C/server.pem" -tls-key "$C/server_key.pem" &
pids+=($!)

cat > "$tmp/openqps.yaml" <<YAML
data_dir: $tmp/data
frontend: {listen: "127.0.0.1:$FP", http_listen: "127.0.0.1:$HP"}
api: {listen: "127.0.0.1:$AP"}
store: {type: ${STORE:-memory}}
log: {level: warn}
virtual_proxies:
  - prefix: bench
    backends: ["http://127.0.0.1:$BP"]
YAML
# stdout carries the audit log (a line per API call): to a file, as in production.
taskset -c 0 "$tmp/openqps" serve --config "$tmp/openqps.yaml" ${CPUPROFILE:+--cpuprofile "$CPUPROFILE"} >"$tmp/openqps.out" 2>"$tmp/openqps.log" &
OQ=$!; pids+=($OQ)
waitport $BP; waitport $AP; waitport $FP
SID=benchsession0123456789abcdef0123
"$tmp/openqps" session add --api https://127.0.0.1:$AP --certs "$C" --vp bench --user 'BENCH\user1' \
  --attr Group=A --attr Group=B --id $SID >/dev/null

targets=${TARGETS:-"direct openqps direct-tls openqps-tls"}
if command -v nginx >/dev/null 2>&1; then
  mkdir -p "$tmp/nginx"
  cat > "$tmp/nginx/nginx.conf" <<NGINX
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx; proxy_temp_path $tmp/nginx; fastcgi_temp_path $tmp/nginx;
  uwsgi_temp_path $tmp/nginx; scgi_temp_path $tmp/nginx;
  upstream be { server 127.0.0.1:$BP; keepalive 64; }
  server { listen 127.0.0.1:$NP; location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  server {
    listen 127.0.0.1:$NIP;
    location / {
      proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header X-Qlik-User "UserDirectory=BENCH; UserId=user1";
      proxy_set_header X-Qlik-Security "SecureRequest=true; Context=AppAccess; Group=A; Group=B;";
      proxy_set_header X-Qlik-Virtual-Proxy-Prefix bench;
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-Host \$http_host;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header Cookie ""; # openqps keeps its session cookie from the back end
    }
  }
}
NGINX
  taskset -c 0 nginx -c "$tmp/nginx/nginx.conf" -g 'daemon off;' &
  NG=$!; pids+=($NG)
  waitport $NP; waitport $NIP
  NGW=$(pgrep -P $NG | head -1) # the worker, which does the proxying
  [ -z "${TARGETS:-}" ] && targets="direct openqps nginx nginx-id direct-tls openqps-tls"
fi

url() {
  case $1 in
    direct) echo "http://127.0.0.1:$BP/hub/" ;;
    direct-tls) echo "https://127.0.0.1:$BTP/hub/" ;;
    openqps) echo "http://127.0.0.1:$HP/bench/hub/" ;;
    openqps-tls) echo "https://127.0.0.1:$FP/bench/hub/" ;;
    nginx) echo "http://127.0.0.1:$NP/hub/" ;;
    nginx-id) echo "http://127.0.0.1:$NIP/hub/" ;;
  esac
}
cookie() {
  case $1 in
    openqps) echo "X-Qlik-Session-bench-HTTP=$SID" ;;
    openqps-tls) echo "X-Qlik-Session-bench=$SID" ;;
    *) echo "X-Qlik-Session-bench=$SID" ;;
  esac
}
# cpu_ticks TARGET: CPU time so far of the proxy a target goes through.
cpu_ticks() {
  case $1 in
    openqps*) awk '{print $14+$15}' /proc/$OQ/stat ;;
    nginx*) awk '{print $14+$15}' /proc/$NGW/stat ;;
    *) echo 0 ;;
  esac
}

# Check that the authenticated path really reaches the back end first.
for t in $targets; do
  case $t in openqps*) ;; *) continue ;; esac
  code=$(curl -sk -o /dev/null -w '%{http_code}' -H "Cookie: $(cookie $t)" "$(url $t)")
  [ "$code" = 200 ] || { echo "$t answered $code, not 200: see $tmp/openqps.log" >&2; cat "$tmp/openqps.log" >&2; exit 1; }
done

results="$tmp/results.tsv"
echo -e "round\ttarget\trps\tp50\tp99\tcpu_us" > "$results"
hz=$(getconf CLK_TCK)
for r in $(seq "$ROUNDS"); do
  for t in $targets; do
    before=$(cpu_ticks $t)
    out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"$DURATION" --latency -H "Cookie: $(cookie $t)" "$(url $t)")
    after=$(cpu_ticks $t)
    python3 - "$r" "$t" "$before" "$after" "$hz" >> "$results" <<PY
import re, sys
out = """$out"""
r, t, before, after, hz = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
def dur(s):
    m = re.match(r"([\d.]+)(us|ms|s)", s)
    if m is None: sys.exit(f"{t}: cannot read latency {s!r} in wrk output:\n{out}")
    v = float(m.group(1))
    return v * {"us": 1e-3, "ms": 1, "s": 1e3}[m.group(2)]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
total = int(re.search(r"(\d+) requests in", out).group(1))
p50 = dur(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)); p99 = dur(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
if errs: sys.exit(f"{t}: {errs.group(1)} non-2xx answers")
cpu = ""
if t.startswith("openqps") or t.startswith("nginx"):
    cpu = "%.1f" % ((after - before) / hz * 1e6 / total)
print(f"{r}\t{t}\t{rps:.0f}\t{p50:.3f}\t{p99:.3f}\t{cpu}")
PY
  done
done

echo
echo "openqps load benchmark: $ROUNDS rounds x $DURATION, wrk -t1 -c$CONNS, servers on core 0, wrk on core 1"
python3 - "$results" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
def val(t, r, k):
    for row in rows:
        if row["target"] == t and row["round"] == r and row[k] != "":
            return float(row[k])
    return None
def med(t, k):
    v = [float(r[k]) for r in rows if r["target"] == t and r[k] != ""]
    return statistics.median(v) if v else None
rounds = sorted({r["round"] for r in rows}, key=int)
base = {"direct": "direct", "openqps": "direct", "nginx": "direct", "nginx-id": "direct", "direct-tls": "direct-tls", "openqps-tls": "direct-tls"}
# Ratios and added p99 are taken within each round, against the direct run
# made moments before, then the median over rounds: a machine that slows
# down for a while slows both sides of a round alike.
print(f"{'target':<12} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6} {'(rounds)':>11} {'p99 added':>10} {'proxy CPU/req':>14}")
for t in ["direct", "openqps", "nginx", "nginx-id", "direct-tls", "openqps-tls"]:
    rps = med(t, "rps")
    if rps is None: continue
    b = base[t]
    ratios = [val(t, r, "rps") / val(b, r, "rps") for r in rounds if val(t, r, "rps") and val(b, r, "rps")]
    added = [val(t, r, "p99") - val(b, r, "p99") for r in rounds if val(t, r, "p99") is not None and val(b, r, "p99") is not None]
    spread = f"{min(ratios):.2f}-{max(ratios):.2f}" if len(ratios) > 1 else ""
    cpu = med(t, "cpu_us")
    print(f"{t:<12} {rps:>9.0f} {med(t,'p50'):>8.3f} {med(t,'p99'):>8.3f} {statistics.median(ratios):>6.2f} {spread:>11} "
          f"{statistics.median(added):>8.3f}ms {('%.1f us' % cpu) if cpu else '':>14}")
PY

if [ "${APILOAD:-1}" = 1 ]; then
  echo
  echo "session API: adds/s over mutual TLS with keep-alive (store: ${STORE:-memory})"
  taskset -c 1 "$tmp/apiload" -api https://127.0.0.1:$AP -certs "$C" -vp bench -c 32 -d "$DURATION"
fi

if [ "${WEBSOCKETS:-1}" = 1 ]; then
  echo
  n=${WS_CONNS:-10000}
  # openqps holds two descriptors per websocket (browser side, back end side).
  hard=$(ulimit -Hn)
  if [ "$hard" != unlimited ] && [ $(( (hard - 200) / 2 )) -lt "$n" ]; then n=$(( (hard - 200) / 2 )); fi
  echo "websockets: openqps memory per open proxied websocket, $n held open (HTTPS front end, echo back end)"
  taskset -c 1 "$tmp/wsload" -url "https://127.0.0.1:$FP/bench/ws" -cookie "X-Qlik-Session-bench=$SID" \
    -root "$C/root.pem" -n "$n" -pid "$OQ" 2>&1 | sed 's/^/  /' || echo "  websocket measurement failed (above); the other parts go on"
fi

# The embedded durable store: adds/s while filling it, then the time from
# start to ready (a request with a stored session answered) after a restart.
if [ "${RESTART:-1}" = 1 ]; then
  echo
  RN=${RESTART_SESSIONS:-1000000}
  echo "embedded store: session adds/s (acknowledged when durable) filling $RN sessions, then restart to ready"
  EP=$(freeport); EAP=$(freeport)
  mkdir -p "$tmp/edata" && cp -r "$C" "$tmp/edata/certs"
  cat > "$tmp/embedded.yaml" <<YAML
data_dir: $tmp/edata
frontend: {listen: "127.0.0.1:$EP"}
api: {listen: "127.0.0.1:$EAP"}
store: {type: embedded}
log: {level: warn}
virtual_proxies:
  - prefix: bench
    backends: ["http://127.0.0.1:$BP"]
YAML
  # $1: the cores openqps may use (the restart has the machine to itself).
  start_embedded() { taskset -c "$1" "$tmp/openqps" serve --config "$tmp/embedded.yaml" >>"$tmp/embedded.out" 2>>"$tmp/embedded.log" & EQ=$!; pids+=($EQ); }
  served() { [ "$(curl -sk -o /dev/null -w '%{http_code}' -H "Cookie: X-Qlik-Session-bench=$SID" "https://127.0.0.1:$EP/bench/hub/")" = 200 ]; }
  start_embedded 0
  waitport $EAP
  if grep -q "not available" "$tmp/embedded.log"; then
    echo "  n/a (embedded store not built)"
    kill -TERM $EQ; wait $EQ || true
  else
    "$tmp/openqps" session add --api https://127.0.0.1:$EAP --certs "$C" --vp bench --user 'BENCH\user1' \
      --attr Group=A --attr Group=B --id $SID >/dev/null
    taskset -c 1 "$tmp/apiload" -api https://127.0.0.1:$EAP -certs "$C" -vp bench -c 32 -n "$RN" -d 30m | sed 's/^/  /'
    kill -TERM $EQ; wait $EQ || true
    t0=$(date +%s%N)
    start_embedded 0,1
    deadline=$(( t0 + 300000000000 ))
    until served; do
      [ "$(date +%s%N)" -lt $deadline ] || { echo "  not ready 300 s after the restart: see $tmp/embedded.log" >&2; cat "$tmp/embedded.log" >&2; exit 1; }
      sleep 0.02
    done
    t1=$(date +%s%N)
    rss=$(awk '/VmRSS/ {print $2}' /proc/$EQ/status)
    echo "  restart_to_ready=$(( (t1 - t0) / 1000000 ))ms (both cores) sessions=$((RN + 1)) rss_mb=$(( rss / 1024 ))"
    kill -TERM $EQ; wait $EQ || true
  fi
fi

if [ "${SCALE:-1}" = 1 ]; then
  echo
  echo "scale: memory store, sessions with two group attributes (bench/scale; one process per line)"
  go build -o "$tmp/scale" ./bench/scale
  for n in 0 100000 1000000; do taskset -c 0 "$tmp/scale" -sessions $n | sed 's/^/  /'; done
  SCALE_ROUNDS=${SCALE_ROUNDS:-5}
  echo "front-end latency with 1k vs 1M live sessions (HTTPS, wrk -c$CONNS on core 1, $SCALE_ROUNDS alternating rounds):"
  taskset -c 0 "$tmp/scale" -compare 1000,1000000 -rounds "$SCALE_ROUNDS" -d "$DURATION" -c "$CONNS" | sed 's/^/  /'
fi
