"""fp32 vs bf16 autocast (`training.precision`) on the CPU: an adapter phase's training speed and a
deployed adapter's evaluation speed on real tasks, side by side, with the scores each reaches.

For each task: the same `st_a` adapter phase (MiniLM, Pfeiffer, the big sweep's settings: 500
training examples, 1 epoch, batch 16, length 64, lr 3e-3) is trained in fp32 and in bf16, rounds
interleaved so that machine load hits both alike, then each trained adapter scores the task's whole
eval split in its own precision (as `evaluate_deployed` does). One thread per process, as one pool
slot or Tune trial has. Prints seconds (median over rounds), the bf16/fp32 speed-ups and both scores.

Whether bf16 pays depends on the CPU: with AVX512-BF16 or AMX oneDNN runs bf16 matmuls natively;
without them autocast emulates and is slower than fp32 (the script prints what torch sees).

    python benchmarks/precision.py                       # sst2 mr subj, 2 rounds
    python benchmarks/precision.py --tasks mr --rounds 3
    python benchmarks/precision.py --smoke               # tiny random BERT, synthetic task
"""
from __future__ import annotations

import dataclasses
import os
import platform
import statistics
import tempfile
import time

import torch

from cl_sim.methods.base import Deployed, MethodContext
from cl_sim.store import Store
from cl_sim.train import evaluate_deployed, run_phase
from sweep_phase import parser, sweep_config, tasks

PRECISIONS = ("fp32", "bf16")


def cpu_bf16() -> str:
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return f"cpu capability {torch.backends.cpu.get_cpu_capability()}, oneDNN native bf16: {'yes' if native else 'no'}"


def main() -> None:
    args = parser(__doc__, "sst2,mr,subj").parse_args()
    base = sweep_config(args)
    backbone = base.backbone.name
    print(f"{platform.node()}: {os.cpu_count()} cores, {args.threads} thread(s), torch {torch.__version__}, "
          f"{cpu_bf16()}; {backbone}, length 64, {args.examples} examples x 1 epoch, batch 16, "
          f"{args.rounds} interleaved rounds (median)")
    print("| task | eval rows | train fp32 s | train bf16 s | train speed-up | eval fp32 s | eval bf16 s "
          "| eval speed-up | score fp32 | score bf16 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    totals = {k: 0.0 for k in ("tf", "tb", "ef", "eb")}
    warm = True  # one untimed phase per precision first: the first model build and oneDNN kernels
    for name, task in tasks(args):
        train_s = {k: [] for k in PRECISIONS}
        eval_s = {k: [] for k in PRECISIONS}
        score = {}
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(tmp)
            def adapter_phase(prec: str):
                cfg = dataclasses.replace(base, training=dataclasses.replace(base.training, precision=prec))
                return MethodContext(cfg, task, run=lambda ph: ph.key()).phase("adapter")

            for prec in PRECISIONS if warm else ():
                run_phase(adapter_phase(prec), task, store)
            warm = False
            for r in range(args.rounds):
                for prec in PRECISIONS if r % 2 == 0 else PRECISIONS[::-1]:
                    phase = adapter_phase(prec)
                    start = time.perf_counter()
                    out = run_phase(phase, task, store)
                    train_s[prec].append(time.perf_counter() - start)
                    store.put(prec, out.states, {"phase": phase.to_dict(), "metrics": out.metrics})
                    start = time.perf_counter()
                    got, _ = evaluate_deployed(Deployed(head=prec, adapter=prec), task, store)
                    eval_s[prec].append(time.perf_counter() - start)
                    if score.setdefault(prec, got) != got:
                        raise SystemExit(f"{name} {prec}: round {r} scored {got}, round 0 {score[prec]}: not deterministic")
        tf, tb = statistics.median(train_s["fp32"]), statistics.median(train_s["bf16"])
        ef, eb = statistics.median(eval_s["fp32"]), statistics.median(eval_s["bf16"])
        for k, v in zip(("tf", "tb", "ef", "eb"), (tf, tb, ef, eb)):
            totals[k] += v
        print(f"| {name} | {len(task.splits[task.eval_split].labels)} | {tf:.1f} | {tb:.1f} | {tf / tb:.2f}x "
              f"| {ef:.1f} | {eb:.1f} | {ef / eb:.2f}x | {score['fp32']:.4f} | {score['bf16']:.4f} |", flush=True)
    print(f"| **all** | | {totals['tf']:.1f} | {totals['tb']:.1f} | **{totals['tf'] / totals['tb']:.2f}x** "
          f"| {totals['ef']:.1f} | {totals['eb']:.1f} | **{totals['ef'] / totals['eb']:.2f}x** | | |")


if __name__ == "__main__":
    main()
