#!/usr/bin/env bash
# Starts or stops a local Redis Cluster for the tests: three masters and three replicas on
# ports BASE..BASE+5 (BASE=7100 unless REDIS_CLUSTER_BASE says otherwise), no persistence,
# data under /tmp. `start` waits until `cluster info` says ok and prints the line to export:
#   REDIS_CLUSTER_NODES=127.0.0.1:7100,127.0.0.1:7101,127.0.0.1:7102
# `node PORT` (re)starts one node with its data dir, e.g. a master killed by a failover test:
# it rejoins the cluster as a replica of the master that took over.
# Usage: tests/support/redis_cluster.sh start|stop|node PORT
set -euo pipefail
base=${REDIS_CLUSTER_BASE:-7100}
dir=/tmp/signaller-redis-cluster-$base
ports=()
for i in 0 1 2 3 4 5; do ports+=($((base + i))); done

stop() {
  for p in "${ports[@]}"; do redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true; done
  rm -rf "$dir"
}

node() {
  local p=$1
  mkdir -p "$dir/$p"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$p" --dir "$dir/$p" \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
    --save "" --appendonly no --logfile "$dir/$p/redis.log"
  for _ in $(seq 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
}

start() {
  if redis-cli -p "$base" cluster info 2>/dev/null | grep -q 'cluster_state:ok'; then
    echo "REDIS_CLUSTER_NODES=127.0.0.1:$base,127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2))"
    return
  fi
  stop
  for p in "${ports[@]}"; do node "$p"; done
  local hosts=()
  for p in "${ports[@]}"; do hosts+=("127.0.0.1:$p"); done
  redis-cli --cluster create "${hosts[@]}" --cluster-replicas 1 --cluster-yes >/dev/null
  for _ in $(seq 100); do
    ok=1
    for p in "${ports[@]}"; do
      redis-cli -p "$p" cluster info | grep -q 'cluster_state:ok' || ok=0
      # Every node knows the three replicas: a failover test needs them in place.
      [ "$(redis-cli -p "$p" cluster nodes | grep -c slave)" = 3 ] || ok=0
    done
    [ $ok = 1 ] && break
    sleep 0.2
  done
  [ $ok = 1 ] || { echo "the Redis Cluster did not come up" >&2; exit 1; }
  echo "REDIS_CLUSTER_NODES=127.0.0.1:$base,127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2))"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  node) node "$2" ;;
  *) echo "usage: $0 start|stop|node PORT" >&2; exit 2 ;;
esac
