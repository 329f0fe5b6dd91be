"""How fast is a phase over N teachers? Fusion training-step time with the N teachers' adapters
in one batched pass (`cl_sim.adapters.modules.stacked_bottlenecks`) against the per-adapter loop and
against the factorized fusion (`method.fusion.factorized`: one key and one value product per token),
for N = 1, 2, 4, 8 (and 5, AdapterHub's measured case), beside an ST-A step on the same batch.

Every configuration runs on the same tensors; repetitions interleave batched, loop and ST-A so
that load from other processes hits them alike. Prints step times and the ratios.

    python benchmarks/multi_teacher.py                 # MiniLM, batch 32, length 128 (~5 min on 2 cores)
    python benchmarks/multi_teacher.py --quick         # MiniLM, batch 16, length 64
    python benchmarks/multi_teacher.py --smoke         # tiny random BERT: seconds
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

SIZES = {"full": ("minilm", 32, 128, 5), "quick": ("minilm", 16, 64, 3), "smoke": ("tiny-bert", 8, 32, 2)}


def model_with(backbone: str, n_teachers: int):
    from cl_sim.config import AdapterConfig
    from cl_sim.model import AdaptedModel, Fuse
    from cl_sim.phases import fresh_backbone

    torch.manual_seed(0)
    model = AdaptedModel(fresh_backbone(backbone)[0], AdapterConfig(kind="pfeiffer"))
    model.add_head("head", "classification", 3)
    if n_teachers == 0:  # ST-A: one trainable adapter
        model.add_adapter("a")
        model.set_active("a")
        train = [p for s in model.slots.values() for p in s.cl_adapters["a"].parameters()]
    else:
        names = tuple(f"t{i}" for i in range(n_teachers))
        for name in names:
            model.add_adapter(name)
        model.add_fusion("f")
        model.set_active(Fuse(names, "f"))
        train = [p for m in model.fusion_modules("f") for p in m.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in train + list(model.heads["head"].parameters()):
        p.requires_grad_(True)
    return model, torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)


def step_time(model, opt, batch, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(batch, "head"), batch["labels"])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return (time.perf_counter() - start) / steps


def main() -> None:
    from cl_sim.adapters import inject

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    backbone, B, T, steps = SIZES["smoke" if args.smoke else "quick" if args.quick else "full"]
    torch.set_num_threads(os.cpu_count() or 1)
    g = torch.Generator().manual_seed(0)
    batch = {"input_ids": torch.randint(1000, 20000, (B, T), generator=g),
             "attention_mask": torch.ones(B, T, dtype=torch.long), "labels": torch.randint(0, 3, (B,), generator=g)}
    print(f"{platform.node()}: {os.cpu_count()} cores, torch {torch.__version__}; {backbone}, batch {B}, length {T}, "
          f"{steps} steps x {args.reps} interleaved repetitions (median)")
    st_model, st_opt = model_with(backbone, 0)
    step_time(st_model, st_opt, batch, 1)  # warm-up
    st = []
    print(f"{'N':>3} {'batched s/step':>15} {'loop s/step':>12} {'factorized s/step':>18} {'loop/batched':>13} "
          f"{'st_a/batched':>13} {'st_a/factorized':>16}")
    for n in (1, 2, 4, 5, 8):
        model, opt = model_with(backbone, n)
        fusions = [m for slot in model.slots.values() for m in slot.cl_fusion.values()]
        times = {"batched": [], "loop": [], "factorized": []}
        for _ in range(args.reps):
            for variant in times:  # same weights, same batch; only how the step is computed differs
                inject.BATCHED_TEACHERS = variant != "loop"
                for f in fusions:
                    f.factorized = variant == "factorized"
                times[variant].append(step_time(model, opt, batch, steps))
            st.append(step_time(st_model, st_opt, batch, steps))
        inject.BATCHED_TEACHERS = True
        b, loop, fac = (statistics.median(times[k]) for k in ("batched", "loop", "factorized"))
        s = statistics.median(st)
        print(f"{n:>3} {b:>15.3f} {loop:>12.3f} {fac:>18.3f} {loop / b:>12.2f}x {s / b:>12.2f}x {s / fac:>15.2f}x")
    print("st_a/batched (st_a/factorized) = fusion throughput as a share of the st_a phase's, plain "
          "(method.fusion.factorized=true) fusion (target for N=5: >= 0.5)")


if __name__ == "__main__":
    main()
