#!/usr/bin/env bash
# The 100-task learning-rate sweep of docs/recipes.md ("Sweeps") as ONE job array, through
# the path users run: a fresh server on the embedded defaults (SQLite, local executor, demo
# data) in a temporary folder, the CLI as greta. Prints the progress, the wall time and the
# median validation loss per learning rate. Needs `make test` (torch) first.
set -euo pipefail
BIN="$(cd "$(dirname "$0")/.." && pwd)/.venv/bin"
D=$(mktemp -d /tmp/sweep100.XXXX); chmod 755 $D
export RECHENWERK_DATA_DIR=$D/var RECHENWERK_PORT=8765 RECHENWERK_API_URL=http://127.0.0.1:8765
export RECHENWERK_LOCAL_SANDBOX_RW=$D XDG_CONFIG_HOME=$D/cfg
cd $D
$BIN/rechenwerk admin db upgrade >/dev/null
$BIN/rechenwerk admin demo >/dev/null
$BIN/rechenwerk server --log-level warning > $D/server.log 2>&1 &
SRV=$!
trap 'kill $SRV' EXIT
for i in $(seq 60); do curl -sf $RECHENWERK_API_URL/readyz >/dev/null && break; sleep 1; done
printf "greta-demo\n" | $BIN/rechenwerk login -u greta >/dev/null 2>&1
$BIN/rechenwerk aup accept --yes >/dev/null 2>&1 || true
$BIN/rechenwerk recipe init gpt-pretrain $D/sweep --project nordlicht-llm --gpus 1 >/dev/null
chmod -R a+rwX $D/sweep
$BIN/python - $D/sweep/job.yaml <<'PY'
import sys, yaml
p = sys.argv[1]; doc = yaml.safe_load(open(p))
doc["array"] = "0-99%10"
doc["walltime"] = "30m"
doc["env"]["LR_LIST"] = "1e-4,2e-4,3e-4,5e-4,7e-4,1e-3,1.5e-3,2e-3,3e-3,5e-3"
doc["script"] = doc["script"].rstrip("\n") + " --preset tiny --seq-len 32 --steps 20\n"
yaml.safe_dump(doc, open(p, "w"), sort_keys=False)
PY
START=$(date +%s)
$BIN/rechenwerk submit $D/sweep/job.yaml
HEAD=$($BIN/rechenwerk jobs --json | $BIN/python -c "import json,sys; print(json.load(sys.stdin)['items'][0]['id'])")
while true; do
  line=$($BIN/rechenwerk jobs | grep "${HEAD}_\[" || true)
  echo "$(date +%T) $line"
  $BIN/rechenwerk job show $HEAD --json | $BIN/python -c "
import json,sys; j=json.load(sys.stdin); s=j['array']['states']
sys.exit(0 if sum(v for k,v in s.items() if k in ('completed','failed','cancelled','timeout'))==j['array']['task_count'] else 1)" && break
  sleep 15
done
echo "wall $(( $(date +%s) - START )) s"
$BIN/rechenwerk job show $HEAD --json | $BIN/python -c "
import json,sys; j=json.load(sys.stdin); print(j['array'])"
ls $D/sweep/runs | wc -l
$BIN/python - $D/sweep/runs <<'PY'
import json, sys, pathlib, statistics
rows = [json.loads(p.read_text()) for p in pathlib.Path(sys.argv[1]).glob("job-*/metrics.json")]
print(len(rows), "metrics files;", len({(r["lr"], r["seed"]) for r in rows}), "distinct (lr, seed)")
best = {}
for r in rows:
    best.setdefault(r["lr"], []).append(r.get("val_loss"))
for lr in sorted(best):
    v = [x for x in best[lr] if x is not None]
    print(f"lr {lr:g}: {len(v)} runs, val_loss median {statistics.median(v):.3f}" if v else f"lr {lr:g}: no val_loss")
PY
