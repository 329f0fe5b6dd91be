"""End to end on real tasks, like for like: SICK adapter, CB adapter, then a fusion of both on CB
(MiniLM, Pfeiffer r16, CPU), in our library and in AdapterHub's `adapters`, each doing the same work.

    python benchmarks/vs_adapterhub_e2e.py --adapterhub-python /tmp/ahvenv/bin/python
    python benchmarks/vs_adapterhub_e2e.py --adapterhub-python /tmp/ahvenv/bin/python --examples 300 --epochs 1 --reps 1
    python benchmarks/vs_adapterhub_e2e.py --adapterhub-python /tmp/ahvenv/bin/python --recipe  # recipe comparison
    python benchmarks/vs_adapterhub_e2e.py --adapterhub-python /tmp/ahvenv/bin/python --smoke   # tiny random BERT

The AdapterHub venv (it pins transformers 4.x): `python3 -m venv /tmp/ahvenv`, then
`/tmp/ahvenv/bin/pip install torch==2.13.0` first (the local CPU wheel, as scripts/setup.sh does),
then `/tmp/ahvenv/bin/pip install adapters accelerate datasets`.

Both sides get the same rows (our stratified training subset, the whole dev split), epochs, batch,
max length, learning rates and seed; dynamic padding on both (`DataCollatorWithPadding` on
AdapterHub's side), one linear head on [CLS] on both, the frozen backbone without dropout on both,
no length groups on ours, no gradient clipping on either (details: `adapterhub_e2e_worker.py`).
Every stage runs in a process of its own and is timed from loading the tokenizer and model to its
dev predictions and saved weights, so nothing (model, tokenisation, head) is carried between stages
on either side. Repetitions interleave: ours (3 stages), AdapterHub (3 stages), ours, ...

Prints per stage both wall times, the per-pair ratios AdapterHub / ours with their median, and both
dev scores, scored here by the same metric code. `--recipe` runs each side's defaults instead
(AdapterHub's documented recipe: padding to max_length, 2-layer head, dropout; ours: length groups,
mean pooling, fusion from the CB head): a recipe comparison, not a library comparison.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
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


def tiny_model(folder: Path) -> Path:
    """A tiny random BERT (MiniLM's tokenizer) saved where both venvs can load it (`--smoke`)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from cl_sim.backbone import minilm_path

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def run_side(lib: str, python: str, common: list[str], store: Path, dev: dict) -> dict:
    """The three stages of one side, each in its own process; per stage its JSON, plus `process_s`
    (the whole process: interpreter start, imports and the timed stage)."""
    from cl_sim.metrics import score
    import numpy as np

    out: dict = {}
    for stage in STAGES:
        extra = []
        if stage == "fusion_cb" and lib == "cl_sim":
            extra = ["--teachers", f"{out['sick']['key']},{out['cb']['key']}", "--cb-key", out["cb"]["key"]]
        cmd = [python, str(HERE / "adapterhub_e2e_worker.py"), "--lib", lib, "--stage", stage,
               "--store", str(store), *common, *extra]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "TRANSFORMERS_VERBOSITY": "error"})
        if proc.returncode != 0:
            sys.exit(f"{lib} {stage} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
        s = json.loads(proc.stdout.strip().splitlines()[-1])
        s["process_s"] = time.perf_counter() - start
        if "pred" in s:  # AdapterHub's predictions, scored by our metric code
            metric, labels, k = dev[stage.replace("fusion_", "")]
            s["dev_score"] = float(score(metric, labels, np.asarray(s.pop("pred")), k))
        out[stage] = s
    return out


def table(runs: dict, recipe: bool) -> None:
    """Medians per stage, the per-pair ratios (pair i: ours' i-th run and AdapterHub's i-th run)."""
    theirs_name = "AdapterHub's recipe" if recipe else "AdapterHub"
    print(f"\n| stage | training rows | ours, s | {theirs_name}, s | {theirs_name} / ours, per pair | median ratio "
          f"| dev ours | dev AdapterHub |")
    print("|---|---|---|---|---|---|---|---|")
    for stage in (*STAGES, "all stages", "all processes"):
        def wall(run):
            if stage == "all stages":
                return sum(run[s]["wall_s"] for s in STAGES)
            if stage == "all processes":
                return sum(run[s]["process_s"] for s in STAGES)
            return run[stage]["wall_s"]
        ours, theirs = [wall(r) for r in runs["cl_sim"]], [wall(r) for r in runs["adapterhub"]]
        ratios = [t / o for o, t in zip(ours, theirs)]
        one = stage in STAGES
        rows = runs["cl_sim"][0][stage]["train_examples"] if one else "-"
        dev_o = f"{statistics.median(r[stage]['dev_score'] for r in runs['cl_sim']):.3f}" if one else "-"
        dev_t = f"{statistics.median(r[stage]['dev_score'] for r in runs['adapterhub']):.3f}" if one else "-"
        print(f"| {stage} | {rows} | {statistics.median(ours):.1f} | {statistics.median(theirs):.1f} | "
              f"{', '.join(f'{x:.2f}' for x in ratios)} | {statistics.median(ratios):.2f} | {dev_o} | {dev_t} |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--adapterhub-python", required=True, help="python of a venv with adapters, accelerate, datasets")
    p.add_argument("--data-root", default=os.environ.get("CL_SIM_DATA", str(ROOT.parent / "shared" / "data")))
    p.add_argument("--examples", type=int, default=1500)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--recipe", action="store_true", help="each side's defaults (a recipe comparison)")
    p.add_argument("--smoke", action="store_true", help="a tiny random BERT, 32 rows, 1 epoch, 1 repetition")
    args = p.parse_args()
    from cl_sim.backbone import minilm_path

    tmp_dir = tempfile.TemporaryDirectory()
    tmp = tmp_dir.name
    model = minilm_path()
    if args.smoke:
        model = tiny_model(Path(tmp) / "tiny-bert")
        args.examples, args.epochs, args.reps = 32, 1, 1
    common = ["--model", str(model), "--data-root", args.data_root, "--examples", str(args.examples),
              "--epochs", str(args.epochs), "--threads", str(args.threads)] + (["--recipe"] if args.recipe else [])
    kind = "recipe comparison (each side's defaults)" if args.recipe else "like for like"
    backbone = "tiny random BERT" if args.smoke else "MiniLM"
    print(f"{kind}: SICK -> CB -> fusion(SICK, CB) on CB: {backbone}, pfeiffer r16, {args.examples} training "
          f"examples max, {args.epochs} epoch(s), batch 32, length 128, lr 1e-3 (fusion 3e-4), {args.threads} "
          f"threads, {args.reps} interleaved repetition(s), one process per stage")
    runs: dict[str, list[dict]] = {"cl_sim": [], "adapterhub": []}
    with tmp_dir:
        data = Path(tmp) / "rows.json"
        dev = rows_file(data, args.data_root, args.examples, 128)
        common += ["--data", str(data)]
        for rep in range(args.reps):
            for lib, python in (("cl_sim", sys.executable), ("adapterhub", args.adapterhub_python)):
                load = os.getloadavg()[0]
                out = run_side(lib, python, common, Path(tmp) / f"{lib}-{rep}", dev)
                runs[lib].append(out)
                print(f"  rep {rep} {lib:<10} " + ", ".join(
                    f"{k} {v['wall_s']:.1f} s (dev {v['dev_score']:.3f})" for k, v in out.items())
                    + f"; processes {sum(v['process_s'] for v in out.values()):.1f} s; "
                    f"load avg {load:.1f} -> {os.getloadavg()[0]:.1f}", flush=True)
    table(runs, args.recipe)
    return 0


if __name__ == "__main__":
    sys.exit(main())
