#!/usr/bin/env bash
# The README's cluster path, end to end: `ray start --head`, then
# `ray job submit --working-dir . -- python experiments/task_order.py --smoke-test`, check it.
#
#   scripts/ray_job_smoke.sh [key=value overrides for task_order.py]
#
# The head is private to this script (own --temp-dir and free ports, so it neither joins nor
# disturbs another Ray on the machine) and runs with `--block` in the background: stopping that
# one process by its PID stops this cluster only (its processes share its fate). `ray stop` would
# stop every Ray process on the machine. Token auth stays on (RAY-NOTES.md recipe).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${VIRTUAL_ENV:-}" ] && [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi

free_port() { python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
TMP=$(mktemp -d /tmp/rjs.XXXXXX)  # short: Ray's socket paths live under it
OUT="${RAY_JOB_SMOKE_OUT:-$PWD/runs/ray_job_smoke}"  # absolute: the job runs in an uploaded copy of the working dir
DASH=$(free_port)
HEAD_PID=""
cleanup() {
  if [ -n "$HEAD_PID" ]; then kill "$HEAD_PID" 2>/dev/null || true; wait "$HEAD_PID" 2>/dev/null || true; fi
  # the head's children (raylet, workers) exit a moment after it and may still write session
  # files while this removes them: retry, and never let tidying up change the verdict
  for _ in 1 2 3 4 5; do rm -rf "$TMP" 2>/dev/null && break; sleep 1; done
  return 0
}
trap cleanup EXIT

start=$(date +%s)
ray start --head --block --num-cpus=2 --disable-usage-stats --temp-dir="$TMP" --include-dashboard=true \
  --port="$(free_port)" --dashboard-port="$DASH" --ray-client-server-port="$(free_port)" \
  --dashboard-agent-listen-port="$(free_port)" >"$TMP/head.log" 2>&1 &
HEAD_PID=$!

export RAY_AUTH_MODE=token RAY_API_SERVER_ADDRESS="http://127.0.0.1:$DASH"
for _ in $(seq 120); do
  if ray job list >/dev/null 2>&1; then break; fi
  if ! kill -0 "$HEAD_PID" 2>/dev/null; then echo "ray start failed:" >&2; cat "$TMP/head.log" >&2; exit 1; fi
  sleep 1
done
echo "ray head up on $RAY_API_SERVER_ADDRESS after $(( $(date +%s) - start )) s"

rm -rf "$OUT"
ray job submit --working-dir . -- python experiments/task_order.py --smoke-test \
  "output.dir=$OUT" "execution.store_dir=$OUT/store" "$@" 2>&1 | tee "$TMP/job.log"
grep -q "Job 'raysubmit_[A-Za-z0-9]*' succeeded" "$TMP/job.log" || { echo "ray job smoke: job did not succeed" >&2; exit 1; }
test -f "$OUT/task_order_smoke/tasks.parquet" || { echo "ray job smoke: no results table" >&2; exit 1; }
echo "ray job smoke: OK in $(( $(date +%s) - start )) s; table $OUT/task_order_smoke/tasks.parquet"
