"""Everything `cl-sim run` would reject before training, checked once, before anything is written.

    cfg = load_config(path, overrides)   # keys, types, ranges, cross-field rules
    tasks = preflight(cfg)               # data, output locations, store, device, backbone, adapters

`cl-sim validate` and `cl-sim run` both call `preflight`, so the two agree on every bad input: a
run that passes it fails later only for reasons that depend on training itself (or on a Ray cluster).
"""
from __future__ import annotations

from pathlib import Path

import torch

from cl_sim.config import Config
from cl_sim.data.task import Task
from cl_sim.errors import ConfigError


def check_destinations(cfg: Config) -> None:
    """The results folder and the store are reachable and writable (found after training otherwise)."""
    from cl_sim.storage import check_reachable

    check_reachable(cfg.output.dir, "output.dir")
    check_reachable(cfg.execution.store_dir, "execution.store_dir")


def preflight(cfg: Config) -> dict[str, Task]:
    """Load every task and check the output folders, the device and the backbone; returns the tasks.

    Raises:
        ConfigError, DataError: the first problem found, naming it.
    """
    from cl_sim.tasks import load_tasks

    check_outputs(cfg)
    check_destinations(cfg)
    tasks = load_tasks(cfg)
    from cl_sim.execution.base import executor_kind

    if executor_kind(cfg) == "local":  # a Ray pool checks its GPUs against the cluster (pool_size)
        from cl_sim.execution.local import local_device

        local_device(cfg.execution.use_gpu)
    check_backbone(cfg)
    return tasks


def check_outputs(cfg: Config) -> None:
    """The results and store folders must be folders (or not exist yet): found after training otherwise."""
    from cl_sim.results import run_dir

    places = {"output.dir": cfg.output.dir, "results folder": run_dir(cfg)}
    if "://" not in cfg.execution.store_dir:  # a URI store is checked by its filesystem
        places["execution.store_dir"] = cfg.execution.store_dir
    for key, place in places.items():
        path = Path(place).expanduser()
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{key}: {path} exists and is not a folder")


def check_backbone(cfg: Config) -> None:
    """Load the backbone (a local folder, the offline cache or the hub) and push one input of
    `backbone.max_length` tokens through it, with the adapters injected when the method (or its KT
    reference) uses them: unsupported encoders, missing adapter positions and a max_length beyond
    the model's positions all fail here instead of in the first phase."""
    from cl_sim.methods import METHODS
    from cl_sim.model import AdaptedModel
    from cl_sim.phases import fresh_backbone

    name, max_length = cfg.backbone.name, cfg.backbone.max_length
    backbone, tokenizer = fresh_backbone(name)  # a copy: injection changes the model in place
    uses_adapters = any(METHODS[m].uses_adapters for m in (cfg.method.name, cfg.method.kt_reference))
    model = AdaptedModel(backbone, cfg.adapter if uses_adapters else None, cfg.backbone.pooling)
    if uses_adapters:
        model.add_adapter("check")
        model.set_active("check")
    batch = tokenizer(["check"], padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    try:
        with torch.no_grad():
            model.encode(dict(batch))
    except (IndexError, RuntimeError, ValueError) as exc:
        positions = getattr(backbone.config, "max_position_embeddings", "?")
        raise ConfigError(f"backbone.max_length: a {max_length}-token input does not run through '{name}' "
                          f"(max_position_embeddings {positions}): {str(exc).splitlines()[0][:160]}") from None
