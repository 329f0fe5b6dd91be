"""Does the phase machinery cost anything? Our `st_a` phase (`cl_sim.train.run_phase`: model
assembly, AdamW, linear schedule, batching, dev score) against a bare PyTorch loop doing the same
computation on the same tensors (same model, batches, optimizer, dev pass), interleaved.

    python benchmarks/phase_throughput.py            # MiniLM, batch 32, length 128, 512 examples
    python benchmarks/phase_throughput.py --quick    # MiniLM, 128 examples, length 64
    python benchmarks/phase_throughput.py --smoke    # tiny random BERT

Prints training examples/s and peak RSS growth for each and the ratio ours/bare (target >= 0.95).
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import time

import torch

SIZES = {"full": ("minilm", 32, 128, 512), "quick": ("minilm", 16, 64, 128), "smoke": ("tiny-bert", 16, 32, 64)}


def setup(backbone: str, batch: int, length: int, n: int):
    from cl_sim.config import load_config
    from cl_sim.data.synthetic import make_synthetic_task
    from cl_sim.methods.base import MethodContext

    cfg = load_config(None, [f"backbone.name={backbone}", f"backbone.max_length={length}", "training.epochs=1",
                             f"training.batch_size={batch}"])
    task = make_synthetic_task("t", "a", n_train=n, n_dev=32, n_test=32)
    return MethodContext(cfg, task, run=lambda p: p.key()).phase("adapter"), task


def ours(phase, task) -> float:
    from cl_sim.train import run_phase

    start = time.perf_counter()
    out = run_phase(phase, task, source=None)
    return out.metrics["examples"] / (time.perf_counter() - start)


def bare(phase, task) -> float:
    """The same work written out by hand: build, train one epoch, predict dev."""
    from cl_sim.data.tokenize import iterate
    from cl_sim.phases import build_model, encoded, phase_seed

    start = time.perf_counter()
    torch.manual_seed(phase_seed(phase))
    model, tokenizer, _ = build_model(phase, task, source=None)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=phase.lr)
    data = encoded(task, "train", tokenizer, phase.max_length)
    model.eval()
    seen = 0
    # the phase's own batch order (epoch 0): dynamic padding makes another order another computation
    for batch in iterate(data, phase.batch_size, shuffle=True, seed=phase_seed(phase), pad_id=tokenizer.pad_token_id):
        loss = torch.nn.functional.cross_entropy(model(batch, "head"), batch["labels"])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        seen += len(batch["labels"])
    with torch.no_grad():
        for batch in iterate(encoded(task, "dev", tokenizer, phase.max_length), 128, pad_id=tokenizer.pad_token_id):
            model(batch, "head").argmax(-1)
    return seen / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    size = SIZES["smoke" if args.smoke else "quick" if args.quick else "full"]
    torch.set_num_threads(os.cpu_count() or 1)
    phase, task = setup(*size)
    print(f"{platform.node()}: {os.cpu_count()} cores, torch {torch.__version__}; {size[0]}, batch {size[1]}, "
          f"length {size[2]}, {size[3]} examples x 1 epoch; {args.reps} interleaved repetitions (median)")
    bare(phase, task)  # warm-up: backbone load, tokenisation cache
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    runs = {"ours": [], "bare": []}
    for _ in range(args.reps):
        runs["ours"].append(ours(phase, task))
        runs["bare"].append(bare(phase, task))
    o, b = statistics.median(runs["ours"]), statistics.median(runs["bare"])
    grow = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    print(f"st_a phase: {o:.1f} examples/s   bare loop: {b:.1f} examples/s   ours/bare: {o / b:.3f}")
    print(f"peak RSS growth over the measured runs: {grow:.0f} MiB (both in one process)")


if __name__ == "__main__":
    main()
