"""Training throughput of our Pfeiffer adapter against AdapterHub's `adapters` on the same model,
tensors, optimizer and steps (MiniLM, batch 32, length 128, CPU), runs interleaved
(ours, theirs, ours, ...), each in its own process and venv (AdapterHub pins transformers 4.x).

    python3 -m venv /tmp/ahvenv && /tmp/ahvenv/bin/pip install torch==2.13.0 && /tmp/ahvenv/bin/pip install adapters
    python benchmarks/vs_adapterhub.py --adapterhub-python /tmp/ahvenv/bin/python
    python benchmarks/vs_adapterhub.py --adapterhub-python /tmp/ahvenv/bin/python --steps 4 --reps 1   # quick

Prints examples/s and peak RSS per run, medians, and the ratio ours/AdapterHub (target >= 1.0).
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

import torch

HERE = Path(__file__).resolve().parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--adapterhub-python", required=True, help="python of a venv with `adapters` installed")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--length", type=int, default=128)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    from cl_sim.backbone import minilm_path

    MINILM_DIR = minilm_path()

    g = torch.Generator().manual_seed(0)
    batches = [{"input_ids": torch.randint(1000, 20000, (args.batch, args.length), generator=g),
                "attention_mask": torch.ones(args.batch, args.length, dtype=torch.long),
                "labels": torch.randint(0, 3, (args.batch,), generator=g)} for _ in range(args.steps)]
    threads = os.cpu_count() or 1
    print(f"MiniLM ({MINILM_DIR}), pfeiffer r16, batch {args.batch}, length {args.length}, {args.steps} steps, "
          f"{threads} threads, {args.reps} interleaved repetitions")
    runs: dict[str, list[dict]] = {"cl_sim": [], "adapterhub": []}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "batches.pt"
        torch.save(batches, path)
        for _ in range(args.reps):
            for lib, python in (("cl_sim", sys.executable), ("adapterhub", args.adapterhub_python)):
                cmd = [python, str(HERE / "adapterhub_worker.py"), "--lib", lib, "--model", str(MINILM_DIR),
                       "--batches", str(path), "--threads", str(threads)]
                proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(HERE.parent)})
                if proc.returncode != 0:
                    sys.exit(f"{lib} run failed:\n{proc.stderr[-3000:]}")
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                runs[lib].append(row)
                print(f"  {lib:>10}: {row['examples_per_s']:.1f} examples/s, peak RSS {row['peak_rss_mib']:.0f} MiB, "
                      f"{row['trainable']:,} trainable", flush=True)
    med = {lib: statistics.median(r["examples_per_s"] for r in rows) for lib, rows in runs.items()}
    rss = {lib: statistics.median(r["peak_rss_mib"] for r in rows) for lib, rows in runs.items()}
    print(f"median: cl_sim {med['cl_sim']:.1f} examples/s ({rss['cl_sim']:.0f} MiB), AdapterHub "
          f"{med['adapterhub']:.1f} examples/s ({rss['adapterhub']:.0f} MiB); ours/AdapterHub "
          f"{med['cl_sim'] / med['adapterhub']:.3f} (target >= 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
