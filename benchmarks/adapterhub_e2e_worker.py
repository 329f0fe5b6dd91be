"""One end-to-end run of the recipe SICK adapter -> CB adapter -> fusion on CB, in either library.

Run by `benchmarks/vs_adapterhub_e2e.py`, never by hand: `--lib cl_sim` in this project's venv,
`--lib adapterhub` in a venv with AdapterHub's `adapters` + `accelerate` + `datasets`. Every stage
is timed from reading its data to having its dev predictions (load, tokenise, train, evaluate).

* cl_sim: the tasks from ../shared/data through `shared_task`, the phases as the `fusion` method
  builds them (`MethodContext`), run by the local executor into a fresh store.
* AdapterHub: its usual recipe (the quickstart / AdapterFusion notebooks): the same rows (from the
  driver's JSON) into `datasets`, tokenised to `max_length` with padding, `AdapterTrainer`, a
  fresh head per stage, `Fuse(sick, cb)` trained with `train_adapter_fusion`.

Prints one JSON line: per stage wall seconds and dev predictions (the driver scores both sides).
"""
from __future__ import annotations

import argparse
import json
import time

import torch

STAGES = ("sick", "cb", "fusion_cb")


def run_cl_sim(args, data: dict) -> dict:
    from cl_sim.config import load_config
    from cl_sim.data.files import shared_task
    from cl_sim.execution.local import LocalExecutor
    from cl_sim.methods.base import MethodContext
    from cl_sim.store import Store

    cfg = load_config(None, [f"backbone.max_length={args.length}", "adapter.kind=pfeiffer",
                             f"training.epochs={args.epochs}", f"training.batch_size={args.batch}",
                             f"training.lr={args.lr}", f"training.max_train_examples={args.examples}",
                             "training.dev_examples=null", f"method.fusion.lr={args.fusion_lr}",
                             f"method.fusion.head_lr={args.fusion_lr}", "method.name=fusion"])
    out, keys, tasks = {}, {}, {}
    ex = LocalExecutor(Store(args.store), tasks, threads=args.threads)
    for stage in STAGES:
        name = stage.replace("fusion_", "")
        start = time.perf_counter()
        if name not in tasks:
            tasks[name] = shared_task(name, args.data_root)
        ctx = MethodContext(cfg, tasks[name], run=ex.run)
        if stage == "fusion_cb":
            phase = ctx.fusion_phase(tuple(sorted(keys.values())), init=keys["cb"])
        else:
            phase = ctx.phase("adapter")
        key = ex.run(phase)
        keys.setdefault(name, key)
        meta = ex.store.meta(key)["metrics"]
        out[stage] = {"wall_s": time.perf_counter() - start, "dev_score": meta["dev_score"],
                      "train_examples": meta["train_examples"], "steps": meta["steps"]}
    return out


def run_adapterhub(args, data: dict) -> dict:
    import datasets
    import numpy as np
    from adapters import AdapterTrainer, AutoAdapterModel, SeqBnConfig
    from adapters.composition import Fuse
    from transformers import AutoTokenizer, TrainingArguments

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoAdapterModel.from_pretrained(args.model)
    out = {}

    def load(name: str):
        def encode(batch):
            texts = batch["texts"]
            pairs = (list(zip(*texts)) if len(texts[0]) > 1 else [[t[0] for t in texts]])
            return tokenizer(*pairs, truncation=True, max_length=args.length, padding="max_length")

        splits = {}
        for split in ("train", "dev"):
            rows = data[name][split]
            ds = datasets.Dataset.from_dict({"texts": rows["texts"], "labels": rows["labels"]})
            splits[split] = ds.map(encode, batched=True, remove_columns=["texts"])
        return splits

    def train(splits, lr: float, seed: int = 0):
        targs = TrainingArguments(output_dir=args.store, per_device_train_batch_size=args.batch,
                                  per_device_eval_batch_size=128, num_train_epochs=args.epochs, learning_rate=lr,
                                  weight_decay=0.0, warmup_steps=0, lr_scheduler_type="linear", seed=seed,
                                  save_strategy="no", logging_strategy="no", report_to=[], use_cpu=True,
                                  dataloader_num_workers=0, disable_tqdm=True)
        trainer = AdapterTrainer(model=model, args=targs, train_dataset=splits["train"])
        trainer.train()
        pred = trainer.predict(splits["dev"]).predictions
        pred = pred[0] if isinstance(pred, tuple) else pred
        return np.asarray(pred).argmax(-1).tolist()

    for stage in STAGES:
        name = stage.replace("fusion_", "")
        start = time.perf_counter()
        splits = load(name)
        head = f"{stage}_head"
        model.add_classification_head(head, num_labels=data[name]["num_labels"])
        if stage == "fusion_cb":
            setup = Fuse("sick", "cb")
            model.add_adapter_fusion(setup)
            model.set_active_adapters(setup)
            model.train_adapter_fusion(setup)
            model.active_head = head
            pred = train(splits, args.fusion_lr)
        else:
            model.add_adapter(name, config=SeqBnConfig(reduction_factor=16, non_linearity="relu"))
            model.train_adapter(name)
            model.set_active_adapters(name)
            model.active_head = head
            pred = train(splits, args.lr)
        out[stage] = {"wall_s": time.perf_counter() - start, "pred": pred,
                      "train_examples": len(data[name]["train"]["labels"])}
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lib", choices=["cl_sim", "adapterhub"], required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help="the driver's JSON: the rows each stage trains and scores")
    p.add_argument("--data-root", required=True)
    p.add_argument("--store", required=True, help="a fresh folder (our store / AdapterHub's output_dir)")
    p.add_argument("--examples", type=int, default=1500)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--length", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--fusion-lr", type=float, default=3e-4)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with open(args.data) as f:
        data = json.load(f)
    start = time.perf_counter()
    stages = (run_cl_sim if args.lib == "cl_sim" else run_adapterhub)(args, data)
    print(json.dumps({"lib": args.lib, "stages": stages, "total_s": time.perf_counter() - start}))


if __name__ == "__main__":
    main()
