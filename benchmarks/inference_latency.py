"""What does each method cost at inference? Per-example latency of the model each method deploys for
a task with N = 1, 2, 4, 8 earlier tasks: `st_a`, `i2i` and `adapter_distillation` deploy one adapter
+ head (the distilled methods' teachers and fusion are discarded after training), `fusion` deploys
its N + 1 adapters (the earlier tasks' and its own) and a fusion layer per adapted position.

Each model is built as `evaluate_deployed` builds it (`cl_sim.model.AdaptedModel`, random weights:
latency does not depend on their values); batch 1 and batch 32 over the same token ids, repetitions
interleaved across methods so that machine load hits them alike. Prints ms per example and the
ratio to `st_a`.

    python benchmarks/inference_latency.py             # MiniLM, length 128
    python benchmarks/inference_latency.py --smoke     # tiny random BERT: seconds
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from multi_teacher import model_with  # the same model assembly as the fusion benchmark

METHODS = ("st_a", "i2i", "adapter_distillation", "fusion")


@torch.no_grad()
def ms_per_example(model, batch: dict, reps: int) -> float:
    start = time.perf_counter()
    for _ in range(reps):
        model(batch, "head")
    return 1000 * (time.perf_counter() - start) / (reps * batch["input_ids"].shape[0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--length", type=int, default=128)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    backbone = "tiny-bert" if args.smoke else "minilm"
    torch.set_num_threads(os.cpu_count() or 1)
    g = torch.Generator().manual_seed(0)
    print(f"{platform.node()}: {os.cpu_count()} cores, torch {torch.__version__}; {backbone}, length {args.length}, "
          f"{args.rounds} interleaved rounds (median)")
    print("| batch | N earlier tasks | " + " | ".join(f"{m} ms/ex" for m in METHODS) + " | fusion / st_a | "
          "distilled / st_a |")
    print("|---" * (len(METHODS) + 4) + "|")
    for bsz, reps in ((1, 20), (32, 2)):
        batch = {"input_ids": torch.randint(1000, 20000, (bsz, args.length), generator=g),
                 "attention_mask": torch.ones(bsz, args.length, dtype=torch.long)}
        for n in (1, 2, 4, 8):
            models = {m: model_with(backbone, n + 1 if m == "fusion" else 0)[0].eval() for m in METHODS}
            for m in models.values():
                ms_per_example(m, batch, 1)  # warm-up
            times = {m: [] for m in METHODS}
            for _ in range(args.rounds):
                for m in METHODS:
                    times[m].append(ms_per_example(models[m], batch, reps))
            med = {m: statistics.median(t) for m, t in times.items()}
            distilled = max(med["i2i"], med["adapter_distillation"]) / med["st_a"]
            print(f"| {bsz} | {n} | " + " | ".join(f"{med[m]:.2f}" for m in METHODS)
                  + f" | {med['fusion'] / med['st_a']:.2f} | {distilled:.2f} |")
    print("targets: distilled / st_a <= 1.05 (one adapter each); fusion grows with N")


if __name__ == "__main__":
    main()
