"""One timing run of a Pfeiffer (sequential bottleneck) adapter training step, in either library.

Run by `benchmarks/vs_adapterhub.py`, never by hand: `--lib cl_sim` in this project's venv,
`--lib adapterhub` in a venv with AdapterHub's `adapters` (it pins transformers 4.x). Both load the
same MiniLM folder, train the same tensors (`--batches`, a torch file written by the driver) for
the same steps with AdamW, and print one JSON line: examples/s and peak RSS.
"""
from __future__ import annotations

import argparse
import json
import resource
import time

import torch


def cl_sim_model(path: str, num_labels: int):
    from transformers import AutoModel

    from cl_sim.config import AdapterConfig
    from cl_sim.model import AdaptedModel

    model = AdaptedModel(AutoModel.from_pretrained(path), AdapterConfig(kind="pfeiffer", reduction_factor=16))
    model.add_head("head", "classification", num_labels)
    model.add_adapter("a")
    model.set_active("a")
    for p in model.parameters():
        p.requires_grad_(False)
    for m in [model.heads["head"], *(s.cl_adapters["a"] for s in model.slots.values())]:
        for p in m.parameters():
            p.requires_grad_(True)
    return lambda batch: model(batch, "head"), model


def adapterhub_model(path: str, num_labels: int):
    from adapters import AutoAdapterModel, SeqBnConfig

    model = AutoAdapterModel.from_pretrained(path)
    model.add_adapter("a", config=SeqBnConfig(reduction_factor=16, non_linearity="relu"))
    model.add_classification_head("a", num_labels=num_labels, layers=1)  # one linear layer, as ours
    model.train_adapter("a")  # freezes everything but the adapter and its head
    model.set_active_adapters("a")
    return lambda b: model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits, model


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lib", choices=["cl_sim", "adapterhub"], required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--batches", required=True)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    batches = torch.load(args.batches)
    torch.manual_seed(0)
    build = cl_sim_model if args.lib == "cl_sim" else adapterhub_model
    forward, model = build(args.model, int(max(b["labels"].max() for b in batches)) + 1)
    model.eval()  # frozen backbone, no dropout: the same computation on both sides
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)

    def step(batch):
        loss = torch.nn.functional.cross_entropy(forward(batch), batch["labels"])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step(batches[0])  # warm-up
    start = time.perf_counter()
    for batch in batches:
        step(batch)
    wall = time.perf_counter() - start
    print(json.dumps({"lib": args.lib, "examples_per_s": sum(len(b["labels"]) for b in batches) / wall,
                      "trainable": sum(p.numel() for p in params),
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
