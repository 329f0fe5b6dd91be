"""Evaluation in length order vs data order: the time to score a real task's eval split, and
whether the predictions agree.

`cl_sim.train.predict` batches rows shortest first (`length_order`) and puts the predictions back in
the split's order, so a batch pads to about its rows' own length instead of its longest row's.
This script scores each task's eval split both ways with the same model (MiniLM + a Pfeiffer adapter
and head, random weights: speed does not depend on them), repetitions interleaved so that machine
load hits both alike, and prints seconds, rows/s, the ratio and the count of differing predictions.

    python benchmarks/eval_order.py                          # sst2 mr cr mpqa subj sick, length 64
    python benchmarks/eval_order.py --length 128 --tasks sick,cb
    python benchmarks/eval_order.py --smoke                  # tiny random BERT, synthetic task
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch

from cl_sim.config import AdapterConfig, TaskConfig
from cl_sim.data.synthetic import make_synthetic_task
from cl_sim.data.tokenize import iterate
from cl_sim.model import AdaptedModel
from cl_sim.phases import encoded, fresh_backbone
from cl_sim.tasks import load_task
from cl_sim.train import predict

DATA = os.environ.get("CL_SIM_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))


@torch.no_grad()
def data_order(model, data, kind, pad_id, batch_size):
    """The previous `predict`: batches in the split's order."""
    outs = []
    for batch in iterate(data, batch_size, shuffle=False, seed=0, pad_id=pad_id):
        out = model(batch, "head").float()
        outs.append(out if kind == "regression" else out.argmax(-1))
    return torch.cat(outs).numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default="sst2,mr,cr,mpqa,subj,sick")
    p.add_argument("--length", type=int, default=64)
    p.add_argument("--batch", type=int, default=128, help="evaluation batch (the executors' default)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args()
    backbone = "tiny-bert" if args.smoke else "minilm"
    torch.set_num_threads(os.cpu_count() or 1)
    print(f"{platform.node()}: {os.cpu_count()} cores, torch {torch.__version__}; {backbone}, length {args.length}, "
          f"batch {args.batch}, {args.rounds} interleaved rounds (median)")
    print("| task | eval rows | mean tokens | data order s | length order s | speed-up | predictions differing |")
    print("|---|---|---|---|---|---|---|")
    totals = [0.0, 0.0]
    names = ["synthetic"] if args.smoke else args.tasks.split(",")
    for name in names:
        task = (make_synthetic_task("synthetic", "a", n_train=32, n_dev=16, n_test=300) if args.smoke
                else load_task(TaskConfig(name=name, source="shared"), DATA, 0))
        model_backbone, tokenizer = fresh_backbone(backbone)
        model = AdaptedModel(model_backbone, AdapterConfig(kind="pfeiffer"), "mean")
        model.add_head("head", task.kind, task.num_labels)
        model.add_adapter("a")
        model.set_active("a")
        model.eval()
        data = encoded(task, task.eval_split, tokenizer, args.length)
        pad = tokenizer.pad_token_id
        runs = {"data": [], "length": []}
        preds = {}
        for _ in range(args.rounds):
            for arm in runs:
                start = time.perf_counter()
                preds[arm] = (data_order(model, data, task.kind, pad, args.batch) if arm == "data"
                              else predict(model, data, task.kind, "head", pad, batch_size=args.batch))
                runs[arm].append(time.perf_counter() - start)
        a, b = statistics.median(runs["data"]), statistics.median(runs["length"])
        totals[0] += a
        totals[1] += b
        differ = (int((np.abs(preds["data"].reshape(-1) - preds["length"].reshape(-1)) > 1e-4).sum())
                  if task.kind == "regression" else int((preds["data"] != preds["length"]).sum()))
        tokens = np.mean([len(r) for r in data.input_ids]) if task.kind != "multiple_choice" else float("nan")
        print(f"| {name} | {len(data)} | {tokens:.1f} | {a:.2f} | {b:.2f} | {a / b:.2f}x | {differ} |", flush=True)
    print(f"| all | | | {totals[0]:.2f} | {totals[1]:.2f} | {totals[0] / totals[1]:.2f}x | |")


if __name__ == "__main__":
    main()
