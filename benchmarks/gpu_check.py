"""GPU check of the Ray phase pool: what it asserts, exactly.

On the GPUs this machine has (a local Ray cluster started here, one GPU per Train worker), for
every method in --methods (default st_a, fusion, i2i, finetune) and both precisions (fp32, bf16
autocast), one stream of two synthetic tasks runs on the pool; its phases train and its evaluations
score on pool workers (`use_gpu`). Asserted, each printed as PASS/FAIL:

  1. every phase entry records a CUDA device (a CPU fallback fails the check);
  2. bf16 vs fp32, same workers: every diagonal score within --bf16-tol (default 0.05);
  3. 2 workers (DDP over NCCL) vs 1, same precision: every diagonal score within --ddp-tol
     (default 0.02) for methods whose backbone is frozen, --ft-tol (0.10) for finetune (its dropout
     masks differ per rank). Needs 2 GPUs; on a 1-GPU machine the 2-worker pool must be refused with
     the config error that names the GPU count (asserted), and the comparison is skipped.

Printed per (workers, precision, method): wall seconds, training examples/s, peak GPU memory of the
workers (rank 0's torch.cuda.max_memory_allocated per phase, recorded in its store entry, MiB),
diag(R). Exit status 1 if any assertion fails.
Sized to finish in under 8 minutes on one H100 with the default random BERT-base-sized encoder
(no hub access). --simulate runs the same checks on the CPU with Ray GPUs that are only declared
(CL_SIM_GPU_AS_CPU=1; assertion 1 then expects "cpu"): a test of this script, not of a GPU.

    python benchmarks/gpu_check.py                       # on a GPU machine
    python benchmarks/gpu_check.py --simulate --backbone tiny --methods st_a,finetune   # any machine
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def backbone_dir(name: str) -> str:
    """`tiny` / `minilm` as they are; `base`: a random BERT-base-sized encoder + MiniLM's tokenizer."""
    if name != "base":
        return {"tiny": "tiny-bert"}.get(name, name)
    from transformers import AutoTokenizer, BertConfig, BertModel

    from cl_sim.backbone import minilm_path

    out = Path(tempfile.mkdtemp(prefix="cl_sim_bert_base_"))
    tok = AutoTokenizer.from_pretrained(str(minilm_path()))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tok))).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


def config(backbone: str, method: str, precision: str, workers: int, store: str, n_train: int):
    from cl_sim.config import load_config

    tasks = ",".join(f"{{name: t{i}, family: {f}, n_train: {n_train}, n_dev: 128, n_test: 256}}"
                     for i, f in enumerate("ab"))
    return load_config(None, [f"backbone.name={backbone}", f"tasks=[{tasks}]", f"method.name={method}",
                              f"training.precision={precision}", "training.epochs=1", "training.batch_size=32",
                              "execution.executor=ray", "execution.use_gpu=true", f"execution.num_workers={workers}",
                              "execution.slots=1", "execution.cpus_per_worker=1", f"execution.store_dir={store}"])


def run_pool(backbone: str, methods: list[str], workers: int, store: str, n_train: int) -> list[dict]:
    """One pool of `workers`-worker phases; every method x precision through it."""
    from cl_sim.execution.ray_train import make_executor
    from cl_sim.simulate import run_stream
    from cl_sim.store import Store
    from cl_sim.tasks import load_tasks

    cfg = config(backbone, methods[0], "fp32", workers, store, n_train)
    executor = make_executor(cfg, Store(store), load_tasks(cfg), log=lambda m: None)
    rows = []
    try:
        for precision in ("fp32", "bf16"):
            for method in methods:
                cfg = config(backbone, method, precision, workers, store, n_train)
                tasks = load_tasks(cfg)
                before = set(Store(store).keys())
                start = time.perf_counter()
                rec = run_stream(cfg, tasks, executor, ("t0", "t1"), log=lambda m: None)
                wall = time.perf_counter() - start
                ran = [Store(store).meta(k)["execution"] for k in set(Store(store).keys()) - before]
                rows.append({"workers": workers, "precision": precision, "method": method, "wall_s": wall,
                             "examples_s": sum(r["examples"] for r in rec.phases) / wall, "diag": np.diag(rec.R),
                             "devices": sorted({e["device"] for e in ran}),
                             "memory_mib": max([e.get("gpu_peak_mib") or 0.0 for e in ran], default=0.0)})
    finally:
        executor.shutdown()
    return rows


def check(name: str, ok: bool, detail: str, failures: list) -> None:
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
    if not ok:
        failures.append(name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="base", help="base (random BERT-base size), minilm, tiny, or a folder")
    parser.add_argument("--methods", default="st_a,fusion,i2i,finetune")
    parser.add_argument("--n-train", type=int, default=1024)
    parser.add_argument("--bf16-tol", type=float, default=0.05)
    parser.add_argument("--ddp-tol", type=float, default=0.02)
    parser.add_argument("--ft-tol", type=float, default=0.10)
    parser.add_argument("--simulate", type=int, nargs="?", const=2, default=0, metavar="GPUS",
                        help="declare this many Ray GPUs and train on the CPU (tests this script, not a GPU)")
    args = parser.parse_args()
    import ray

    from cl_sim.errors import ConfigError

    if args.simulate:
        os.environ["CL_SIM_GPU_AS_CPU"] = "1"
    gpus = args.simulate or torch.cuda.device_count()
    if gpus == 0:
        print("gpu_check: no CUDA device (use --simulate N to test the script on the CPU)")
        return 2
    print(f"gpu_check: {gpus} GPU(s){' simulated' if args.simulate else ': ' + torch.cuda.get_device_name(0)}; "
          f"torch {torch.__version__}, CUDA {torch.version.cuda}")
    ray.init(num_gpus=gpus, num_cpus=max(2 * gpus, os.cpu_count() or 1), include_dashboard=True,  # else Train V2 floods the log
             namespace="cl_sim", runtime_env={"env_vars": {"CL_SIM_GPU_AS_CPU": "1"}} if args.simulate else None)
    backbone, methods = backbone_dir(args.backbone), args.methods.split(",")
    expected = "cpu" if args.simulate else "cuda:0"
    failures: list[str] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        rows = run_pool(backbone, methods, 1, f"{tmp}/w1", args.n_train)
        if gpus >= 2:
            rows += run_pool(backbone, methods, 2, f"{tmp}/w2", args.n_train)
        else:
            try:
                run_pool(backbone, methods[:1], 2, f"{tmp}/w2", args.n_train)
                check("2 workers on 1 GPU refused", False, "the pool started", failures)
            except ConfigError as exc:
                check("2 workers on 1 GPU refused", "1 GPU(s)" in str(exc), str(exc), failures)
    print(f"\n{'workers':>7} {'prec':<5} {'method':<10} {'wall s':>7} {'ex/s':>8} {'MiB':>7}  diag(R)")
    for r in rows:
        print(f"{r['workers']:>7} {r['precision']:<5} {r['method']:<10} {r['wall_s']:>7.1f} {r['examples_s']:>8.0f} "
              f"{r['memory_mib']:>7.0f}  {np.round(r['diag'], 3).tolist()}")
    print()
    by = {(r["workers"], r["precision"], r["method"]): r for r in rows}
    for r in rows:
        check(f"device {r['workers']}w {r['precision']} {r['method']}", r["devices"] == [expected],
              f"entries on {r['devices']}", failures)
    for (w, p, m), r in by.items():
        if p == "bf16":
            gap = float(np.max(np.abs(r["diag"] - by[(w, "fp32", m)]["diag"])))
            check(f"bf16 ~ fp32 {w}w {m}", gap <= args.bf16_tol, f"max |diff| {gap:.3f} (tol {args.bf16_tol})", failures)
        if w == 2:
            tol = args.ft_tol if m in ("finetune", "sequential_ft") else args.ddp_tol
            gap = float(np.max(np.abs(r["diag"] - by[(1, p, m)]["diag"])))
            check(f"2 workers ~ 1 {p} {m}", gap <= tol, f"max |diff| {gap:.3f} (tol {tol})", failures)
    print(f"gpu_check: {'OK' if not failures else f'{len(failures)} FAILED'} in {time.perf_counter() - start:.0f} s")
    ray.shutdown()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
