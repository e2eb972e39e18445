#!/usr/bin/env bash
# The seed scenario (ErieCanal cross-cluster failover, ../../shared/seed) on this machine, in one command:
# three member clusters, each a Kubernetes API stand-in loaded by real kubectl with what a user writes
# (Services, EndpointSlices, ServiceExports, later GlobalTrafficPolicies); `sluice sync` over the three
# writes the ServiceImports; httpbin pods (test backends) in cluster-1 and cluster-3; a sluice gateway in
# cluster-1 and cluster-3 and a sluice sidecar in cluster-2, each fed by its own cluster's API. Then the
# seed, step by step, checked:
#   1. curl from cluster-2 -> "no endpoint" (only local endpoints serve by default)
#   2. GlobalTrafficPolicy ActiveActive -> answers from cluster-1 and cluster-3 pods
#   3. under load, cluster-1's httpbin dies (pods, then gateway) -> no failed request; it comes back ->
#      traffic returns to both
#   4. GlobalTrafficPolicy FailOver (cluster-1 then cluster-3) -> all to cluster-1; cluster-1 dies -> all
#      to cluster-3, no failed request; it comes back -> traffic fails back to cluster-1
# Ends with `seed scenario: N requests, F failed`; exits 1 if any step did not behave as the seed says.
# Loopback only (127.0.0.11/.12/.13 are the clusters' nodes, .21/.22 and .41/.42 their pods), bounded
# (about a minute), every process stopped and the work directory removed on exit (SEED_KEEP=1 keeps it).
#
# Environment: SLUICE_BUILD_DIR (default: build; built here when the binaries are missing),
# SEED_KEEP=1 (keep logs), SEED_LOG_LEVEL (sluice --log-level, default info).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
PY=/usr/bin/python3
build=${SLUICE_BUILD_DIR:-build}
sluice_bin=$build/cli/sluice
backend_bin=$build/tests/backend/sluice-testbackend
log_level=${SEED_LOG_LEVEL:-info}

die() { echo "seed: $*" >&2; exit 2; }

# ---- build what is missing ---------------------------------------------------------------------
if [ ! -x "$sluice_bin" ] || [ ! -x "$backend_bin" ] || [ -z "${SLUICE_BUILD_DIR:-}" ]; then
  bash tests/install-deps.sh || die "installing the build dependencies failed"
  [ -f "$build/build.ninja" ] || meson setup "$build" >/dev/null || die "meson setup $build failed"
  ninja -C "$build" -j2 cli/sluice tests/backend/sluice-testbackend >/dev/null ||
    die "building sluice failed (ninja -C $build cli/sluice tests/backend/sluice-testbackend)"
fi
command -v kubectl >/dev/null || die "kubectl is needed (the clusters are loaded with it)"
command -v curl >/dev/null || die "curl is needed"

# The addresses are fixed (they are in the manifests): one run at a time on this machine.
exec 9>"${TMPDIR:-/tmp}/sluice-seed-failover.lock"
flock -w 300 9 || die "another seed scenario is still running"

work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-seed.XXXXXX")
declare -A pid=()      # role -> pid of what is running
problems=()
requests=0
failed=0

stop() {  # stop ROLE [SIGNAL]: signal one process we started and reap it
  local p=${pid[$1]:-}
  [ -n "$p" ] || return 0
  kill "-${2:-TERM}" "$p" 2>/dev/null
  wait "$p" 2>/dev/null
  unset "pid[$1]"
}
cleanup() {
  trap - EXIT INT TERM HUP PIPE
  for role in "${!pid[@]}"; do kill -TERM "${pid[$role]}" 2>/dev/null; done
  for role in "${!pid[@]}"; do
    for _ in $(seq 50); do kill -0 "${pid[$role]}" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "${pid[$role]}" 2>/dev/null
    wait "${pid[$role]}" 2>/dev/null
  done
  if [ "${SEED_KEEP:-0}" = 1 ]; then echo "seed: logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
trap 'exit 141' PIPE

now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.2f", a - b }'; }   # seconds since $1
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", a - b }'; }
if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold="" plain=""; fi
say() { printf '\n%s%s%s\n' "$bold" "$*" "$plain"; }
fail() { problems+=("$*"); echo "  !! $*"; }
ok() { echo "  ok: $*"; }
indent() { sed 's/^/    /'; }
field() { sed -n "s/.*\b$1=\([0-9.]*\).*/\1/p" <<<"$2"; }   # field NAME "k=v k=v"

# ---- the pieces --------------------------------------------------------------------------------
ports_free() {  # every fixed address this scenario binds must be free
  $PY - "$@" <<'EOF'
import socket, sys
busy = []
for a in sys.argv[1:]:
    host, port = a.rsplit(":", 1)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT is no obstacle
    try:
        s.bind((host, int(port)))
    except OSError as e:
        busy.append(f"{a} ({e.strerror})")
    finally:
        s.close()
if busy:
    sys.exit("busy: " + ", ".join(busy))
EOF
}

start_api() {  # start_api cluster-N: an API server stand-in; writes $work/cluster-N.kubeconfig
  local c=$1
  $PY tests/k8s/apiserver.py --listen 127.0.0.1:0 --control 127.0.0.1:0 \
    --certs-dir "$work/$c-pki" --write-kubeconfig "$work/$c.kubeconfig" \
    >"$work/api-$c.out" 2>"$work/api-$c.log" 9>&- &
  pid[api-$c]=$!
  for _ in $(seq 200); do
    grep -q '^apiserver ready on' "$work/api-$c.out" 2>/dev/null && break
    kill -0 "${pid[api-$c]}" 2>/dev/null || break
    sleep 0.05
  done
  grep -q '^apiserver ready on' "$work/api-$c.out" 2>/dev/null ||
    die "the API stand-in of $c did not start: $(tail -5 "$work/api-$c.log")"
  echo "  $c: Kubernetes API $(sed -n 's/^apiserver ready on //p' "$work/api-$c.out")  (kubeconfig $work/$c.kubeconfig)"
}

kc() {  # kc cluster-N ARGS...: run kubectl against that cluster's API, showing the command
  local c=$1; shift
  echo "  [$c] \$ kubectl $*"
  kubectl --kubeconfig "$work/$c.kubeconfig" --cache-dir "$work/kube-cache-$c" --request-timeout 20s "$@" \
    >"$work/kubectl.out" 2>&1
  local rc=$?
  indent <"$work/kubectl.out"
  return $rc
}

start_pod() {  # start_pod ROLE ADDRESS NAME: an httpbin pod (answers its name, like the seed's pipy)
  "$backend_bin" --listen "$2:8080" --name "$3" >"$work/$1.log" 2>&1 9>&- &
  pid[$1]=$!
  for _ in $(seq 100); do
    [ "$(curl --noproxy '*' -s -m 1 "http://$2:8080/" 2>/dev/null)" = "$3" ] && return 0
    kill -0 "${pid[$1]}" 2>/dev/null || break
    sleep 0.05
  done
  die "pod $3 did not start on $2:8080: $(tail -3 "$work/$1.log")"
}

start_cluster1_pods() {
  start_pod pod-c1-a 127.0.0.21 httpbin-cluster1-7d9c-a
  start_pod pod-c1-b 127.0.0.22 httpbin-cluster1-7d9c-b
}
start_cluster3_pods() {
  start_pod pod-c3-a 127.0.0.41 httpbin-cluster3-5f2b-a
  start_pod pod-c3-b 127.0.0.42 httpbin-cluster3-5f2b-b
}

admin_of() {  # admin_of ROLE: the admin address of that sluice
  case $1 in gateway-cluster-1) echo 127.0.0.11:15000 ;; sidecar-cluster-2) echo 127.0.0.12:15000 ;;
    gateway-cluster-3) echo 127.0.0.13:15000 ;; sync) echo 127.0.0.10:15100 ;; esac
}

start_sync() {  # `sluice sync` over the three clusters (sync.json): wait for its /ready (first full resync)
  sed "s|@WORK@|$work|g" "$here/sync.json" >"$work/sync.json"
  "$sluice_bin" sync --config "$work/sync.json" --log-level "$log_level" >>"$work/sync.log" 2>&1 9>&- &
  pid[sync]=$!
  local t0 code
  t0=$(now)
  for _ in $(seq 150); do
    code=$(curl --noproxy '*' -s -o /dev/null -w '%{http_code}' -m 1 "http://$(admin_of sync)/ready" 2>/dev/null)
    [ "$code" = 200 ] && break
    kill -0 "${pid[sync]}" 2>/dev/null || break
    sleep 0.1
  done
  [ "$code" = 200 ] || die "sluice sync is not ready ($code): $(tail -5 "$work/sync.log")"
  printf '  sluice sync: first full resync done in %.2f s (admin http://%s)\n' "$(since "$t0")" "$(admin_of sync)"
}

wait_imports() {  # until cluster-2's ServiceImport lists the gateways of cluster-1 and cluster-3
  for _ in $(seq 100); do
    kubectl --kubeconfig "$work/cluster-2.kubeconfig" --cache-dir "$work/kube-cache-cluster-2" \
      get serviceimports -n httpbin httpbin -o 'jsonpath={.spec.ports[0].endpoints[*].clusterKey}' 2>/dev/null |
      grep -q 'cluster-1.*cluster-3' && return 0
    sleep 0.1
  done
  die "sluice sync did not write cluster-2's ServiceImport: $(tail -5 "$work/sync.log")"
}

start_sluice() {  # start_sluice gateway-cluster-1|gateway-cluster-3|sidecar-cluster-2: wait for /ready
  local role=$1 admin
  admin=$(admin_of "$role")
  sed "s|@WORK@|$work|g" "$here/$role.json" >"$work/$role.json"
  "$sluice_bin" --config "$work/$role.json" --log-level "$log_level" >>"$work/$role.log" 2>&1 9>&- &
  pid[$role]=$!
  local t0 code
  t0=$(now)
  for _ in $(seq 150); do
    code=$(curl --noproxy '*' -s -o /dev/null -w '%{http_code}' -m 1 "http://$admin/ready" 2>/dev/null)
    [ "$code" = 200 ] && break
    kill -0 "${pid[$role]}" 2>/dev/null || break
    sleep 0.1
  done
  [ "$code" = 200 ] || die "$role is not ready (admin http://$admin/ready: $code): $(tail -5 "$work/$role.log")"
  printf '  %s: sluice ready in %.2f s (admin http://%s)\n' "$role" "$(since "$t0")" "$admin"
}

# The app in cluster-2 calls http://httpbin.httpbin:8080/; in a pod, iptables sends that connection to
# the sidecar's outbound listener. Here --connect-to does the same: the request is unchanged.
SIDECAR=127.0.0.12:15001
app_curl() { curl --noproxy '*' -s -m 10 --connect-to "httpbin.httpbin:8080:$SIDECAR" "$@" http://httpbin.httpbin:8080/; }

EXPLAIN='/explain?listener=outbound&host=httpbin.httpbin:8080&path=/'
wait_policy() {  # wait_policy LBTYPE: until the sidecar's /explain shows that policy for httpbin
  local t0
  t0=$(now)
  for _ in $(seq 100); do
    if curl --noproxy '*' -s -m 1 "http://127.0.0.12:15000$EXPLAIN" | grep -q "\"$1\""; then
      printf '  the sidecar applies %s %.2f s after kubectl returned\n' "$1" "$(since "$t0")"
      return 0
    fi
    sleep 0.05
  done
  fail "the sidecar did not pick up the $1 policy within 5 s"
  return 1
}

load() {  # load OUT SECONDS: the app's traffic in the background (4 keep-alive clients, 200 requests/s)
  $PY "$here/load.py" run --connect "$SIDECAR" --host httpbin.httpbin:8080 --out "$1" \
    --workers 4 --rate 200 --duration "$2" --max-requests 6000 9>&- &
  pid[load]=$!
}

report() { $PY "$here/load.py" report --records "$1" ${2:+--from "$2"} ${3:+--to "$3"}; }

count_load() {  # count_load RECORDS: add a run's requests to the totals, list its failures
  local r total bad
  r=$(report "$1")
  total=$(field total "$r"); bad=$(field failed "$r")
  requests=$((requests + total)); failed=$((failed + bad))
  if [ "$bad" -gt 0 ]; then
    fail "$bad of $total requests failed:"
    $PY "$here/load.py" failures --records "$1" | head -20 | indent
  else
    ok "$total requests, none failed"
  fi
}

timeline() { $PY "$here/load.py" timeline --records "$1" --from "$2" "${@:3}" | indent; }

kill_cluster1() {  # the pods first, then the gateway, as a cluster going away
  stop pod-c1-a KILL; stop pod-c1-b KILL
  echo "  [cluster-1] httpbin pods killed (SIGKILL)"
  [ "${1:-}" = pods-only ] && return 0
  stop gateway-cluster-1 KILL
  echo "  [cluster-1] gateway killed (SIGKILL)"
}

# ---- 0. the clusters ---------------------------------------------------------------------------
say "0. Three member clusters on loopback"
ports_free 127.0.0.11:18081 127.0.0.13:18083 127.0.0.12:15001 127.0.0.11:15000 127.0.0.12:15000 \
  127.0.0.13:15000 127.0.0.10:15100 127.0.0.21:8080 127.0.0.22:8080 127.0.0.41:8080 127.0.0.42:8080 || die "addresses in use"
for c in cluster-1 cluster-2 cluster-3; do start_api $c; done
m=examples/seed-failover/manifests
for c in cluster-1 cluster-2 cluster-3; do
  kc $c create -f $m/$c.yaml || die "loading $c failed"
done
kc cluster-1 get endpointslices,serviceexports -n httpbin
echo "  the ServiceImports are not loaded: sluice sync writes them from the three clusters' exports"
start_sync
wait_imports
kc cluster-2 get serviceimports -n httpbin -o yaml
start_cluster1_pods
start_cluster3_pods
echo "  httpbin pods: cluster-1 127.0.0.21:8080 127.0.0.22:8080, cluster-3 127.0.0.41:8080 127.0.0.42:8080"
start_sluice gateway-cluster-1
start_sluice gateway-cluster-3
start_sluice sidecar-cluster-2
echo "  the gateways serve the export on 127.0.0.11:18081 and 127.0.0.13:18083; the cluster-2 sidecar's"
echo "  outbound listener is $SIDECAR"

# ---- 1. no policy: Not found -------------------------------------------------------------------
say "1. From cluster-2, without a GlobalTrafficPolicy: only local endpoints serve, and there are none"
echo "  [cluster-2 app] \$ curl -s http://httpbin.httpbin:8080/   (--connect-to the sidecar $SIDECAR)"
answer=$(app_curl -w '|%{http_code}')
code=${answer##*|}; answer=${answer%|*}
echo "    $answer"
echo "    (HTTP $code)"
if [ "$code" = 503 ] && grep -qi 'no endpoint' <<<"$answer"; then
  ok "503 \"no endpoint\": the seed's \"Not found\""
else
  fail "step 1: expected 503 \"no endpoint\", got: $answer"
fi

# ---- 2. ActiveActive ---------------------------------------------------------------------------
say "2. GlobalTrafficPolicy ActiveActive in cluster-2: answers from cluster-1's and cluster-3's pods"
kc cluster-2 create -f $m/gtp-active-active.yaml || fail "step 2: kubectl create failed"
wait_policy ActiveActive
$PY "$here/explain.py" 127.0.0.12:15000 | indent
seen=""
for i in $(seq 8); do
  answer=$(app_curl -w '|%{http_code}')
  answer="$(head -1 <<<"${answer%|*}") (HTTP ${answer##*|})"
  echo "  [cluster-2 app] \$ curl -s http://httpbin.httpbin:8080/  -> $answer"
  requests=$((requests + 1))
  case $answer in
    httpbin-cluster1-*"(HTTP 200)") seen+=" cluster-1" ;;
    httpbin-cluster3-*"(HTTP 200)") seen+=" cluster-3" ;;
    *) failed=$((failed + 1)); fail "step 2: request $i: unexpected answer: $answer" ;;
  esac
done
if grep -q cluster-1 <<<"$seen" && grep -q cluster-3 <<<"$seen"; then
  ok "both clusters answer:$seen"
else
  fail "step 2: expected answers from both cluster-1 and cluster-3, got:$seen"
fi

# ---- 3. cluster-1 goes away under load, and comes back -----------------------------------------
say "3. Under load (4 clients, 18 s), cluster-1's httpbin goes away and comes back"
rec3=$work/step3.records
t0=$(now)
load "$rec3" 18
sleep 3
t_pods=$(now)
kill_cluster1 pods-only
t_pods_dead=$(now)   # from here no request can reach a cluster-1 pod
sleep 3
stop gateway-cluster-1 KILL
t_gw=$(now)
echo "  [cluster-1] gateway killed (SIGKILL)"
sleep 3
t_restart=$(now)
start_cluster1_pods
start_sluice gateway-cluster-1
t_back=$(now)
echo "  [cluster-1] pods and gateway are back"
wait "${pid[load]}"; unset "pid[load]"
t_end=$(now)
timeline "$rec3" "$t0" --mark "$t_pods:cluster-1 pods killed" --mark "$t_gw:cluster-1 gateway killed" \
  --mark "$t_back:cluster-1 back"
count_load "$rec3"
r=$(report "$rec3" "$t0" "$t_pods")
[ "$(field cluster-1 "$r")" -gt 0 ] && [ "$(field cluster-3 "$r")" -gt 0 ] &&
  ok "before: both clusters serve ($r)" || fail "step 3: before the loss both clusters should serve: $r"
r=$(report "$rec3" "$t_pods_dead" "$t_restart")
[ "$(field cluster-1 "$r")" = 0 ] && [ "$(field cluster-3 "$r")" -gt 0 ] && [ "$(field failed "$r")" = 0 ] &&
  ok "while cluster-1 is gone: cluster-3 serves every request ($r)" ||
  fail "step 3: while cluster-1 is gone every request should succeed from cluster-3: $r"
r=$(report "$rec3" "$t_back" "$t_end")
first=$(field first_cluster-1 "$r")
if [ "$(field cluster-1 "$r")" -gt 0 ] && [ "$(field cluster-3 "$r")" -gt 0 ]; then
  ok "after it came back: both clusters serve again, cluster-1 from +${first} s ($r)"
else
  fail "step 3: after cluster-1 came back both clusters should serve: $r"
fi

# ---- 4. FailOver -------------------------------------------------------------------------------
say "4. GlobalTrafficPolicy FailOver (cluster-1, then cluster-3): cluster-1 serves while it is healthy"
kc cluster-2 replace -f $m/gtp-failover.yaml || fail "step 4: kubectl replace failed"
wait_policy FailOver
# cluster-1 came back a few seconds ago: once its slow start is over, its tier takes everything.
echo "  [cluster-2 sidecar] \$ curl -s 'http://127.0.0.12:15000$EXPLAIN'"
$PY "$here/explain.py" 127.0.0.12:15000 --wait-load cluster-1=100 | indent ||
  fail "step 4: cluster-1's tier should take 100% of the traffic under FailOver"
rec4=$work/step4.records
t0=$(now)
load "$rec4" 16
sleep 3
t_kill=$(now)
kill_cluster1
t_dead=$(now)
sleep 2
echo "  what the sidecar sees 2 s later:"
$PY "$here/explain.py" 127.0.0.12:15000 | indent
sleep 2
t_restart=$(now)
start_cluster1_pods
start_sluice gateway-cluster-1
t_back=$(now)
echo "  [cluster-1] pods and gateway are back"
wait "${pid[load]}"; unset "pid[load]"
t_end=$(now)
timeline "$rec4" "$t0" --mark "$t_kill:cluster-1 killed" --mark "$t_back:cluster-1 back"
count_load "$rec4"
r=$(report "$rec4" "$t0" "$(minus "$t_kill" 0.5)")   # requests in flight at the kill may be retried
[ "$(field cluster-1 "$r")" -gt 0 ] && [ "$(field cluster-3 "$r")" = 0 ] &&
  ok "cluster-1 healthy: it takes all the traffic ($r)" || fail "step 4: cluster-1 should take all the traffic: $r"
r=$(report "$rec4" "$t_dead" "$t_restart")
[ "$(field cluster-3 "$r")" -gt 0 ] && [ "$(field failed "$r")" = 0 ] &&
  ok "cluster-1 gone: cluster-3 takes it all, nothing failed ($r)" ||
  fail "step 4: with cluster-1 gone cluster-3 should take every request: $r"
r=$(report "$rec4" "$(minus "$t_end" 2)" "$t_end")
c1=$(field cluster-1 "$r"); c3=$(field cluster-3 "$r")
[ "$c1" -gt "$c3" ] && ok "cluster-1 back: traffic fails back to it (last 2 s: $r)" ||
  fail "step 4: after cluster-1 came back it should take the traffic again (last 2 s: $r)"

# ---- summary -----------------------------------------------------------------------------------
say "Summary"
echo "  [cluster-2 sidecar] \$ curl -s http://127.0.0.12:15000/stats | grep ...   (what it counted)"
curl --noproxy '*' -s -m 2 http://127.0.0.12:15000/stats >"$work/stats.txt"
grep -E '^sluice_(requests_total|retries_total|upstream_connect_failures_total|upstream_requests_total|ejections_total|failover_events_total)' \
  "$work/stats.txt" | grep -v 'curl.curl' | indent
# The sidecar saw exactly what the app sent: our requests plus step 1's.
counted=$(sed -n 's/^sluice_requests_total \([0-9]*\)$/\1/p' "$work/stats.txt")
[ "$counted" = $((requests + 1)) ] || fail "the sidecar counted ${counted:-?} requests, the app sent $((requests + 1))"
echo "seed scenario: $requests requests, $failed failed"
if [ ${#problems[@]} -gt 0 ]; then
  echo "seed scenario: ${#problems[@]} step check(s) did not behave as the seed says:"
  printf '  - %s\n' "${problems[@]}"
  echo "  (SEED_KEEP=1 keeps the logs: sluice, access logs, API stand-ins, request records)"
  exit 1
fi
[ "$failed" = 0 ] || exit 1
exit 0
