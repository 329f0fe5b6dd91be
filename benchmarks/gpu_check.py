"""GPU path check and timings: an I2I stream (adapter, fusion and distill phases) on CUDA in fp32
and bf16, against the CPU, on a randomly initialised BERT-base-sized encoder (no hub access).

    python benchmarks/gpu_check.py                 # cuda fp32 + bf16 (+ cpu with --cpu)
    python benchmarks/gpu_check.py --size tiny     # seconds, any machine

Prints one row per (device, precision): wall time, example-steps per second, speed-up over the
first row, and the accuracy matrix diagonal (bf16 must stay close to fp32).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def base_model_dir(size: str) -> str:
    """Save a random encoder + the MiniLM tokenizer to a temp folder (BERT-base or tiny)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from cl_sim.backbone import minilm_path

    if size == "tiny":
        return "tiny-bert"
    out = Path(tempfile.mkdtemp(prefix="cl_sim_bert_base_"))
    tok = AutoTokenizer.from_pretrained(str(minilm_path()))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tok))).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


def run(backbone: str, device: str, precision: str, n_train: int, epochs: int) -> dict:
    from cl_sim.config import load_config, ordering
    from cl_sim.execution.local import LocalExecutor
    from cl_sim.simulate import run_stream
    from cl_sim.store import Store
    from cl_sim.tasks import load_tasks

    tasks = ",".join(f"{{name: t{i}, family: a, n_train: {n_train}, n_dev: 256, n_test: 256}}" for i in range(3))
    cfg = load_config(None, [f"backbone.name={backbone}", f"tasks=[{tasks}]", "method.name=i2i",
                             f"training.precision={precision}", f"training.epochs={epochs}", "training.batch_size=32",
                             f"execution.use_gpu={'true' if device == 'cuda' else 'false'}"])
    loaded = load_tasks(cfg)
    with tempfile.TemporaryDirectory() as store_dir:
        ex = LocalExecutor(Store(store_dir), loaded, device=device)
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        rec = run_stream(cfg, loaded, ex, ordering(cfg), log=lambda m: None)
        wall = time.perf_counter() - start
        steps = sum(r["examples"] for r in rec.phases)
    return {"device": device, "precision": precision, "wall_s": wall, "example_steps": steps,
            "diag": np.diag(rec.R).round(3).tolist(), "phases": ex.trained}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["base", "tiny"], default="base")
    parser.add_argument("--n-train", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--cpu", action="store_true", help="also time the CPU (slow for BERT-base)")
    args = parser.parse_args()
    backbone = base_model_dir(args.size)
    combos = ([("cpu", "fp32")] if args.cpu or not torch.cuda.is_available() else [])
    if torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}")
        run(backbone, "cuda", "fp32", 64, 1)  # warm-up: CUDA context, kernels, tokenizer caches
        combos += [("cuda", "fp32"), ("cuda", "bf16")]
    rows = [run(backbone, d, p, args.n_train, args.epochs) for d, p in combos]
    first = rows[0]["wall_s"]
    print(f"{'device':<6} {'prec':<5} {'wall s':>8} {'ex-steps/s':>11} {'speed-up':>9}  phases  diag(R)")
    for r in rows:
        print(f"{r['device']:<6} {r['precision']:<5} {r['wall_s']:>8.2f} {r['example_steps'] / r['wall_s']:>11.0f} "
              f"{first / r['wall_s']:>8.2f}x  {r['phases']:>6}  {r['diag']}")


if __name__ == "__main__":
    main()
