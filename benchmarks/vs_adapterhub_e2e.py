"""A recipe comparison on real tasks: our defaults against AdapterHub's documented recipe. SICK
adapter, CB adapter, then a fusion of both on CB (MiniLM, Pfeiffer r16, CPU), the same rows, epochs,
batch, length and learning rates on both sides, runs interleaved (ours, theirs, ours, ...), each in
its own process.

    python benchmarks/vs_adapterhub_e2e.py --adapterhub-python /tmp/ahvenv/bin/python
    python benchmarks/vs_adapterhub_e2e.py --adapterhub-python /tmp/ahvenv/bin/python --examples 300 --epochs 1  # quick

Every stage is timed from reading its data to its dev predictions (load, tokenise, train, evaluate;
`adapterhub_e2e_worker.py`). Prints per stage both wall times, their ratio and both dev scores,
scored here by the same metric code.

The two sides do different work, so the ratio is not a library speed-up: AdapterHub's recipe pads
every row to max_length (ours pads each batch to its longest row), runs the frozen backbone in
train mode (ours in eval mode), uses a 2-layer head (ours 1) and re-tokenises per stage (ours reuses
a cached tokenisation, and our fusion starts from the trained CB head). With the same tensors the
step-level comparison (`vs_adapterhub.py`) is a tie. A like-for-like run needs the same padding,
head and mode on both sides (docs/PERFORMANCE.md).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STAGES = ("sick", "cb", "fusion_cb")


def rows_file(path: Path, data_root: str, examples: int, length: int) -> dict:
    """The rows each stage uses (our stratified training subset, the whole dev split) as JSON."""
    from cl_sim.config import load_config
    from cl_sim.data.files import shared_task
    from cl_sim.methods.base import MethodContext
    from cl_sim.phases import train_indices

    cfg = load_config(None, [f"training.max_train_examples={examples}", f"backbone.max_length={length}"])
    data, dev_labels = {}, {}
    for name in ("sick", "cb"):
        task = shared_task(name, data_root)
        idx = train_indices(MethodContext(cfg, task, run=lambda p: p.key()).phase("adapter"), task)
        train = task.splits["train"] if idx is None else task.splits["train"].subset(idx)
        dev = task.splits["dev"]
        data[name] = {"num_labels": task.num_labels,
                      "train": {"texts": [list(t) for t in train.texts], "labels": train.labels.tolist()},
                      "dev": {"texts": [list(t) for t in dev.texts], "labels": dev.labels.tolist()}}
        dev_labels[name] = (task.metric, dev.labels, task.num_labels)
    path.write_text(json.dumps(data))
    return dev_labels


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--adapterhub-python", required=True, help="python of a venv with adapters, accelerate, datasets")
    p.add_argument("--data-root", default=os.environ.get("CL_SIM_DATA", str(ROOT.parent / "shared" / "data")))
    p.add_argument("--examples", type=int, default=1500)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--reps", type=int, default=1)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = p.parse_args()
    import numpy as np

    from cl_sim.backbone import minilm_path
    from cl_sim.metrics import score

    common = ["--model", str(minilm_path()), "--data-root", args.data_root, "--examples", str(args.examples),
              "--epochs", str(args.epochs), "--threads", str(args.threads)]
    print(f"SICK -> CB -> fusion(SICK, CB) on CB: MiniLM, pfeiffer r16, {args.examples} training examples max, "
          f"{args.epochs} epoch(s), batch 32, length 128, lr 1e-3 (fusion 3e-4), {args.threads} threads, "
          f"{args.reps} interleaved repetition(s)")
    runs: dict[str, list[dict]] = {"cl_sim": [], "adapterhub": []}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "rows.json"
        dev = rows_file(data, args.data_root, args.examples, 128)
        for rep in range(args.reps):
            for lib, python in (("cl_sim", sys.executable), ("adapterhub", args.adapterhub_python)):
                store = Path(tmp) / f"{lib}-{rep}"
                cmd = [python, str(HERE / "adapterhub_e2e_worker.py"), "--lib", lib, "--data", str(data),
                       "--store", str(store), *common]
                proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                                      env={**os.environ, "TRANSFORMERS_VERBOSITY": "error"})
                if proc.returncode != 0:
                    sys.exit(f"{lib} run failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
                out = json.loads(proc.stdout.strip().splitlines()[-1])
                for stage, s in out["stages"].items():
                    if "pred" in s:  # AdapterHub's predictions, scored by our metric code
                        metric, labels, k = dev[stage.replace("fusion_", "")]
                        s["dev_score"] = float(score(metric, labels, np.asarray(s.pop("pred")), k))
                runs[lib].append(out)
                print(f"  rep {rep} {lib:<10} " + ", ".join(
                    f"{k} {v['wall_s']:.1f} s (dev {v['dev_score']:.3f})" for k, v in out["stages"].items())
                    + f"; process {out['total_s']:.1f} s", flush=True)
    print(f"\n| stage | training rows | ours, s | AdapterHub's recipe, s | recipe / ours (different work) | dev ours | dev AdapterHub |")
    print("|---|---|---|---|---|---|---|")
    for stage in STAGES + ("total",):
        def med(lib, key):
            vals = [r["total_s"] if stage == "total" else r["stages"][stage][key] for r in runs[lib]]
            return statistics.median(vals)
        ours, theirs = med("cl_sim", "wall_s"), med("adapterhub", "wall_s")
        rows = "-" if stage == "total" else runs["cl_sim"][0]["stages"][stage]["train_examples"]
        dev_o = "-" if stage == "total" else f"{med('cl_sim', 'dev_score'):.3f}"
        dev_t = "-" if stage == "total" else f"{med('adapterhub', 'dev_score'):.3f}"
        print(f"| {stage} | {rows} | {ours:.1f} | {theirs:.1f} | {theirs / ours:.2f} | {dev_o} | {dev_t} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
