"""One stage (SICK adapter, CB adapter, or fusion of both on CB) of the end-to-end comparison, in
either library, in a process of its own, so no model, tokenisation or head is carried between stages.

Run by `benchmarks/vs_adapterhub_e2e.py`, never by hand: `--lib cl_sim` in this project's venv,
`--lib adapterhub` in a venv with AdapterHub's `adapters` + `accelerate` + `datasets`. The stage is
timed from before loading the tokenizer and model to having its dev predictions and its trained
weights on disk (load, read rows, tokenise, train, evaluate, save); imports are outside the timer.

Like-for-like (default), the two sides do the same work:
* padding: each batch to its longest row (ours: `iterate`; AdapterHub: `DataCollatorWithPadding`);
  our length groups (a batch split by length inside the model) are switched off, and our dev pass
  goes in file order as AdapterHub's does (ours sorts dev rows by length): the same dev batches;
  training batches are each side's own seeded shuffle (same sizes, same padding on average);
* head: one linear layer on the first token ([CLS]) on both sides (`backbone.pooling=cls`;
  AdapterHub `layers=1`);
* frozen backbone without dropout: ours in eval mode; AdapterHub's Trainer switches to train mode,
  so its dropout probabilities are set to 0 (backbone, head, fusion); no gradient clipping
  (`max_grad_norm=0`: ours clips none);
* fusion: a fresh head on both sides, its two adapters read from what the adapter stages saved.
`--recipe`: each side's defaults instead (AdapterHub's documented recipe: rows padded to
max_length, its 2-layer head, dropout on, clipping at 1.0; ours: length groups, mean pooling,
length-sorted dev pass, fusion starting from the CB stage's head).

Prints one JSON line: wall seconds, training rows, and dev predictions (AdapterHub; the driver
scores both sides with our metric code) or our dev score, and our stage's store key.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def run_cl_sim(args) -> dict:
    import cl_sim.model
    import cl_sim.train
    from cl_sim.config import load_config
    from cl_sim.data.files import shared_task
    from cl_sim.execution.local import LocalExecutor
    from cl_sim.methods.base import MethodContext
    from cl_sim.store import Store

    overrides = [f"backbone.name={args.model}", f"backbone.max_length={args.length}", "adapter.kind=pfeiffer",
                 f"training.epochs={args.epochs}", f"training.batch_size={args.batch}", f"training.lr={args.lr}",
                 f"training.max_train_examples={args.examples}", "training.dev_examples=null",
                 f"method.fusion.lr={args.fusion_lr}", f"method.fusion.head_lr={args.fusion_lr}", "method.name=fusion"]
    if not args.recipe:
        cl_sim.model.GROUP_OVERHEAD_TOKENS = 0  # length groups off: one padded batch per step
        cl_sim.train.length_order = lambda data: np.arange(len(data))  # dev batches in file order
        overrides += ["backbone.pooling=cls", "method.fusion.record_attention=false"]
    cfg = load_config(None, overrides)
    start = time.perf_counter()
    name = args.stage.replace("fusion_", "")
    tasks = {name: shared_task(name, args.data_root)}
    ex = LocalExecutor(Store(args.store), tasks, threads=args.threads)
    ctx = MethodContext(cfg, tasks[name], run=ex.run)
    if args.stage == "fusion_cb":
        init = {"init": args.cb_key} if args.recipe else {}  # our fusion method starts from the task's own head
        phase = ctx.fusion_phase(tuple(args.teachers.split(",")), **init)
    else:
        phase = ctx.phase("adapter")
    key = ex.run(phase)
    meta = ex.store.meta(key)["metrics"]
    return {"wall_s": time.perf_counter() - start, "dev_score": meta["dev_score"], "key": key,
            "train_examples": meta["train_examples"], "steps": meta["steps"]}


def run_adapterhub(args) -> dict:
    import datasets
    from adapters import AdapterTrainer, AutoAdapterModel, SeqBnConfig
    from adapters.composition import Fuse
    from transformers import AutoTokenizer, DataCollatorWithPadding, TrainingArguments

    start = time.perf_counter()
    name = args.stage.replace("fusion_", "")
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    no_dropout = {} if args.recipe else {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    model = AutoAdapterModel.from_pretrained(args.model, **no_dropout)
    with open(args.data) as f:
        rows = json.load(f)[name]

    def encode(batch):
        texts = batch["texts"]
        pairs = list(zip(*texts)) if len(texts[0]) > 1 else [[t[0] for t in texts]]
        return tokenizer(*pairs, truncation=True, max_length=args.length,
                         padding="max_length" if args.recipe else False)

    splits = {split: datasets.Dataset.from_dict({"texts": rows[split]["texts"], "labels": rows[split]["labels"]})
              .map(encode, batched=True, remove_columns=["texts"]) for split in ("train", "dev")}
    head = f"{args.stage}_head"
    model.add_classification_head(head, num_labels=rows["num_labels"], **({} if args.recipe else {"layers": 1}))
    if args.stage == "fusion_cb":
        for teacher in ("sick", "cb"):
            model.load_adapter(f"{args.store}/{teacher}", load_as=teacher, with_head=False)
        setup = Fuse("sick", "cb")
        model.add_adapter_fusion(setup)
        model.set_active_adapters(setup)
        model.train_adapter_fusion(setup)
        lr = args.fusion_lr
    else:
        model.add_adapter(name, config=SeqBnConfig(reduction_factor=16, non_linearity="relu"))
        model.train_adapter(name)
        model.set_active_adapters(name)
        lr = args.lr
    model.active_head = head
    targs = TrainingArguments(output_dir=f"{args.store}/trainer", per_device_train_batch_size=args.batch,
                              per_device_eval_batch_size=128, num_train_epochs=args.epochs, learning_rate=lr,
                              weight_decay=0.0, warmup_steps=0, lr_scheduler_type="linear", seed=0,
                              max_grad_norm=1.0 if args.recipe else 0.0, save_strategy="no", logging_strategy="no",
                              report_to=[], use_cpu=True, dataloader_num_workers=0, disable_tqdm=True)
    trainer = AdapterTrainer(model=model, args=targs, train_dataset=splits["train"],
                             data_collator=DataCollatorWithPadding(tokenizer))
    trainer.train()
    pred = trainer.predict(splits["dev"]).predictions
    pred = pred[0] if isinstance(pred, tuple) else pred
    if args.stage != "fusion_cb":
        model.save_adapter(f"{args.store}/{name}", name, with_head=False)
    return {"wall_s": time.perf_counter() - start, "pred": np.asarray(pred).argmax(-1).tolist(),
            "train_examples": len(rows["train"]["labels"]),
            "steps": int(trainer.state.global_step)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lib", choices=["cl_sim", "adapterhub"], required=True)
    p.add_argument("--stage", choices=["sick", "cb", "fusion_cb"], required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help="the driver's JSON: the rows each stage trains and scores")
    p.add_argument("--data-root", required=True)
    p.add_argument("--store", required=True, help="a fresh folder per repetition (our store / AdapterHub's saves)")
    p.add_argument("--teachers", default="", help="fusion, ours: the adapter stages' store keys, comma-separated")
    p.add_argument("--cb-key", default="", help="fusion, ours, --recipe: the CB stage's key (its head)")
    p.add_argument("--recipe", action="store_true", help="each side's defaults instead of the same work")
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
    import transformers.models.bert.modeling_bert  # noqa: F401  both sides: imports outside the timer
    from transformers import AutoModel, AutoTokenizer  # noqa: F401
    out = (run_cl_sim if args.lib == "cl_sim" else run_adapterhub)(args)
    print(json.dumps({"lib": args.lib, "stage": args.stage, **out}))


if __name__ == "__main__":
    main()
