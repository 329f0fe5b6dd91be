"""Length groups (`cl_sim.model.GROUP_OVERHEAD_TOKENS`): a training batch's rows run through the
backbone in groups of similar length, each padded to its own longest row, instead of the whole
batch padded to its longest. Same maths (padding is masked), fewer padded tokens, more calls.

For each task the same `st_a` adapter phase (MiniLM, Pfeiffer, the big sweep's settings: 500
training examples, 1 epoch, batch 16, length 64, lr 3e-3) trains with each overhead setting
(0 = one padded batch, as before), rounds interleaved so machine load hits all alike; then each
trained adapter scores the task's eval split. Prints seconds (median over rounds), the speed-up
over 0, the share of computed tokens that are real, and the scores (equal up to float rounding:
the groups change GEMM shapes, not the function).

    python benchmarks/length_groups.py                     # sst2 mr subj cr rte, overheads 0,32,64,128
    python benchmarks/length_groups.py --tasks mr --overheads 0,64 --rounds 3
    python benchmarks/length_groups.py --smoke             # tiny random BERT, synthetic task
"""
from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time

import numpy as np
import torch

from cl_sim import model as model_mod
from cl_sim.data.tokenize import iterate
from cl_sim.methods.base import Deployed, MethodContext
from cl_sim.phases import build_model, encoded, train_indices
from cl_sim.store import Store
from cl_sim.train import evaluate_deployed, run_phase
from sweep_phase import parser, sweep_config, tasks



def real_share(phase, task, store, overhead: float) -> float:
    """Real tokens / computed tokens over one epoch's batches with this overhead."""
    _, tokenizer, _ = build_model(phase, task, store)
    data = encoded(task, "train", tokenizer, phase.max_length, train_indices(phase, task))
    real = computed = 0
    for batch in iterate(data, phase.batch_size, shuffle=True, seed=0, pad_id=tokenizer.pad_token_id):
        lengths = batch["attention_mask"].reshape(-1, batch["attention_mask"].shape[-1]).sum(-1)
        real += int(lengths.sum())
        computed += sum(len(g) * int(lengths[g].max()) for g in model_mod.length_groups(lengths, overhead))
    return real / computed


def main() -> None:
    p = parser(__doc__, "sst2,mr,subj,cr,rte")
    p.add_argument("--overheads", default="0,32,64,128", help="GROUP_OVERHEAD_TOKENS settings (0 = off)")
    args = p.parse_args()
    cfg = sweep_config(args)
    backbone = cfg.backbone.name
    default = model_mod.GROUP_OVERHEAD_TOKENS
    overheads = [float(x) for x in args.overheads.split(",")]
    if overheads[0] != 0:
        overheads.insert(0, 0.0)
    print(f"{platform.node()}: {os.cpu_count()} cores, {args.threads} thread(s), torch {torch.__version__}; "
          f"{backbone}, length 64, {args.examples} examples x 1 epoch, batch 16, {args.rounds} interleaved rounds "
          "(median)")
    head = " | ".join(f"{o:g}: s (x, real)" for o in overheads)
    print(f"| task | {head} | scores |")
    print("|---|" + "---|" * len(overheads) + "---|")
    totals = {o: 0.0 for o in overheads}
    warm = True
    try:
        for name, task in tasks(args):
            phase = MethodContext(cfg, task, run=lambda ph: ph.key()).phase("adapter")
            times = {o: [] for o in overheads}
            scores = {}
            with tempfile.TemporaryDirectory() as tmp:
                store = Store(tmp)
                if warm:  # the first model build and oneDNN's kernels, untimed
                    run_phase(phase, task, store)
                    warm = False
                for r in range(args.rounds):
                    for o in overheads if r % 2 == 0 else overheads[::-1]:
                        model_mod.GROUP_OVERHEAD_TOKENS = o
                        start = time.perf_counter()
                        out = run_phase(phase, task, store)
                        times[o].append(time.perf_counter() - start)
                        if o not in scores:
                            tag = f"o{o:g}"
                            store.put(tag, out.states, {"phase": phase.to_dict(), "metrics": out.metrics})
                            scores[o] = evaluate_deployed(Deployed(head=tag, adapter=tag), task, store)[0]
                share = {o: real_share(phase, task, store, o) for o in overheads}
            med = {o: statistics.median(times[o]) for o in overheads}
            for o in overheads:
                totals[o] += med[o]
            cells = " | ".join(f"{med[o]:.1f} ({med[0] / med[o]:.2f}x, {share[o]:.2f})" for o in overheads)
            print(f"| {name} | {cells} | {' / '.join(f'{scores[o]:.4f}' for o in overheads)} |", flush=True)
    finally:
        model_mod.GROUP_OVERHEAD_TOKENS = default
    cells = " | ".join(f"{totals[o]:.1f} (**{totals[0] / totals[o]:.2f}x**)" for o in overheads)
    print(f"| **all** | {cells} | |")


if __name__ == "__main__":
    main()
