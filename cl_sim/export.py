"""Export a trained adapter and its task head from the store in forms other tools load.

    key, note = resolve_entry(store, "rte")            # a store key, or a task's latest deployed adapter
    files = export(store, key, "safetensors", "out/rte")   # or "adapterhub"
    model, tokenizer, meta = load_safetensors("out/rte")   # back into a cl_sim model (round trip)

`safetensors`: `adapter.safetensors` holds the entry's tensors under the store's own names
(`adapter/<slot module>.down.weight`, ..., `head/proj.weight`) with the metadata as string fields
(adapter kind, reduction factor, bottleneck width, rank, backbone, pooling, task, label names, ...),
and `cl_sim_adapter.json` holds the same metadata as plain JSON plus the slot positions.

`adapterhub`: the layout AdapterHub's `adapters` library reads with `model.load_adapter(DIR)`
(Poth et al. 2023, "Adapters: A Unified Library for Parameter-Efficient and Modular Transfer
Learning"): `adapter_config.json` + `pytorch_adapter.bin` / `adapter.safetensors` with its
parameter names (`encoder.layer.N.output.adapters.NAME.adapter_down.0.weight`, `adapter_up`), and,
where AdapterHub's heads compute what ours did (first-token pooling, a classification or regression
head), `head_config.json` + `pytorch_model_head.bin` / `model_head.safetensors`. Our bottleneck sits
on the sublayer's output projection before the residual and LayerNorm (`cl_sim.adapters.inject`),
which is AdapterHub's bottleneck with `original_ln_before: false`, `residual_before_ln: true`,
`original_ln_after: true`, no adapter LayerNorms, scaling 1: the config says so, so the loaded
adapter computes exactly ours. Pfeiffer = `output_adapter` only, Houlsby = also `mh_adapter`.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Optional

from cl_sim.errors import ConfigError

FORMATS = ("safetensors", "adapterhub")
EXPORTABLE = ("adapter", "distill")  # kinds whose entries hold one task's adapter and head
SIDE_CAR = "cl_sim_adapter.json"
# encoder types whose slot module names AdapterHub's bottleneck layers mirror (`<sublayer>.dense`)
ADAPTERHUB_MODELS = {"bert": "BertAdapterModel", "roberta": "RobertaAdapterModel",
                     "xlm-roberta": "XLMRobertaAdapterModel"}
ACTIVATION = {"relu": "relu", "gelu": "gelu", "tanh": "tanh", "identity": "linear"}  # ours -> AdapterHub's
PARAM = {"down.weight": "adapter_down.0.weight", "down.bias": "adapter_down.0.bias",
         "up.weight": "adapter_up.weight", "up.bias": "adapter_up.bias"}


# ---------------------------------------------------------------- the command


def parse_args(args: list[str]) -> tuple[str, str, str, Optional[str], list[str]]:
    """`KEY|TASK --format FORMAT DIR [--store DIR | CONFIG key=value ...]` ->
    (name, format, folder, store or None, config args)."""
    rest, found = list(args), {"--format": None, "--store": None}
    for flag in found:
        if flag in rest:
            i = rest.index(flag)
            if i + 1 >= len(rest):
                raise ConfigError(f"export: {flag} needs a value")
            found[flag] = rest[i + 1]
            del rest[i:i + 2]
    if found["--format"] is None:
        raise ConfigError(f"export: --format is required ({', '.join(FORMATS)})")
    if len(rest) < 2 or rest[0].startswith("-") or rest[1].startswith("-"):
        raise ConfigError("export: expected KEY|TASK and DIR: cl-sim export KEY|TASK --format FORMAT DIR")
    if found["--store"] is not None and rest[2:]:
        raise ConfigError("export: give --store DIR or a config, not both")
    return rest[0], found["--format"], rest[1], found["--store"], rest[2:]


def from_store(name: str, fmt: str, folder: str, store_dir: str, cfg=None) -> tuple[str, list[Path], list[str]]:
    """Export `name` (a key or a task) from the store at `store_dir`: (how it was chosen, files,
    notes). `cfg`: the run's config, whose task gives the kind and label names."""
    from cl_sim.store import Store

    if "://" not in store_dir and not (Path(store_dir) / "manifest").is_dir():
        raise ConfigError(f"export: {store_dir} is not a cl_sim store (no manifest/ folder); pass --store DIR")
    store = Store(store_dir)
    key, how = resolve_entry(store, name)
    task = None
    if cfg is not None:
        from cl_sim.tasks import load_tasks

        task = load_tasks(cfg).get(store.meta(key)["phase"]["task"])
    files, notes = export(store, key, fmt, folder, task)
    return how, files, notes


# ---------------------------------------------------------------- which entry


def _exportable(entry: dict) -> bool:
    phase = entry.get("phase") or {}
    return phase.get("kind") in EXPORTABLE and {"adapter", "head"} <= set(entry.get("groups") or {})


def _describe(entry: dict, age_s: Optional[float]) -> str:
    p = entry["phase"]
    a = p.get("adapter") or {}
    age = "" if age_s is None else f", {age_s / 60:.0f} min ago"
    return (f"{entry['key']} ({p['kind']}, {p['backbone']}, {a.get('kind')} rf {a.get('reduction_factor')}, "
            f"seed {p['seed']}, lr {p['lr']:g}{age})")


def resolve_entry(store, name: str) -> tuple[str, str]:
    """(store key, a line saying how it was chosen). `name` is a store key, or a task name: then the
    task's latest deployed adapter, i.e. the newest full-data adapter/distill entry of that task that
    no other entry of the task starts from (I2I's intermediate phases are not deployed). A task
    trained on several backbones or datasets is ambiguous: the error lists the candidates' keys."""
    from cl_sim.search_space import did_you_mean
    from cl_sim.store_admin import read_manifest

    if store.has(name):
        entry = store.meta(name)
        if not _exportable(entry):
            raise ConfigError(f"export: entry {name} is a {entry.get('phase', {}).get('kind', '?')} phase; only "
                              f"{', '.join(EXPORTABLE)} entries hold a task's own adapter and head")
        return name, f"entry {name}"
    entries = [e for e in (read_manifest(store, k) for k in store.keys()) if e and _exportable(e)]
    tasks = sorted({e["phase"]["task"] for e in entries})
    mine = [e for e in entries if e["phase"]["task"] == name]
    inits = {e["phase"].get("init") for e in mine}
    deployed = [e for e in mine if e["key"] not in inits and float(e["phase"].get("fraction", 1.0)) == 1.0]
    if not deployed:
        known = f"tasks with adapters: {', '.join(tasks)}" if tasks else "it holds no adapters"
        raise ConfigError(f"export: '{name}' is neither a store key nor a task with a trained adapter in "
                          f"{store.root}{did_you_mean(name, tasks)} ({known})")
    now = time.time()
    ages = {e["key"]: _age(store, e["key"], now) for e in deployed}
    setups = {(e["phase"]["backbone"], e["phase"]["data_hash"]) for e in deployed}
    if len(setups) > 1:
        listed = "; ".join(_describe(e, ages[e["key"]]) for e in sorted(deployed, key=lambda e: e["key"]))
        raise ConfigError(f"export: task '{name}' was trained on {len(setups)} backbones or datasets in "
                          f"{store.root}; pass one KEY: {listed}")
    latest = min(deployed, key=lambda e: (ages[e["key"]] if ages[e["key"]] is not None else float("inf"), e["key"]))
    others = f" (newest of {len(deployed)} deployed adapters of '{name}')" if len(deployed) > 1 else ""
    return latest["key"], f"task {name}: {_describe(latest, ages[latest['key']])}{others}"


def _age(store, key: str, now: float) -> Optional[float]:
    mtime = store.files.mtime(f"manifest/{key}.json")
    return None if mtime is None else now - mtime


# ---------------------------------------------------------------- metadata


def metadata(store, key: str, task=None) -> dict:
    """What an export says about itself. `task`: the `Task` (kind, label names) when the caller
    has it; else the kind is read off the head's shape and the labels are unknown (None)."""
    import cl_sim
    from cl_sim.backbone import cached_backbone, hidden_size

    entry = store.meta(key)
    p, a = entry["phase"], dict(entry["phase"].get("adapter") or {})
    states = store.states(key)
    width = next(v.shape[0] for k, v in states["adapter"].items() if k.endswith("down.weight"))
    outputs = states["head"]["proj.weight"].shape[0]
    backbone, _ = cached_backbone(p["backbone"])
    same_task = task is not None and task.name == p["task"] and task.data_hash() == p["data_hash"]
    return {
        "format": "cl_sim.adapter", "format_version": 1, "cl_sim_version": cl_sim.__version__, "store_key": key,
        "phase_kind": p["kind"], "task": p["task"], "data_hash": p["data_hash"],
        "task_kind": task.kind if same_task else ("classification" if outputs > 1 else None),
        "labels": list(task.labels) if same_task else None, "num_outputs": outputs,
        "metric": task.metric if same_task else None, "dev_score": (entry.get("metrics") or {}).get("dev_score"),
        "backbone": p["backbone"], "model_type": backbone.config.model_type, "hidden_size": hidden_size(backbone),
        "pooling": p["pooling"], "max_length": p["max_length"], "adapter_kind": a.get("kind"),
        "reduction_factor": a.get("reduction_factor"), "bottleneck": width, "rank": a.get("rank"),
        "non_linearity": a.get("non_linearity"), "adapter": a, "seed": p["seed"], "lr": p["lr"], "epochs": p["epochs"],
        "precision": p.get("precision", "fp32"),
    }


# ---------------------------------------------------------------- writers


def export(store, key: str, fmt: str, folder: str | Path, task=None) -> tuple[list[Path], list[str]]:
    """Write entry `key` to `folder` in `fmt`; returns (files written, notes for the user)."""
    if fmt not in FORMATS:
        from cl_sim.search_space import did_you_mean

        raise ConfigError(f"export: --format {fmt!r} is not one of {', '.join(FORMATS)}{did_you_mean(fmt, FORMATS)}")
    meta = metadata(store, key, task)
    folder = Path(folder)
    if fmt == "adapterhub":
        adapterhub_check(meta)  # before anything is written
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "safetensors":
        return write_safetensors(folder, store.states(key), meta), []
    return write_adapterhub(folder, store.states(key), meta)


def _sidecar(folder: Path, meta: dict, **extra) -> Path:
    from cl_sim.io import atomic_write_json

    path = folder / SIDE_CAR
    atomic_write_json(path, {**meta, **extra})
    return path


def _save_tensors(path: Path, tensors: dict, metadata: Optional[dict] = None) -> Path:
    from safetensors.torch import save_file

    from cl_sim.io import atomic_save_file

    atomic_save_file(path, lambda tmp: save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata))
    return path


def _torch_save(path: Path, tensors: dict) -> Path:
    import torch

    from cl_sim.io import atomic_save_file

    atomic_save_file(path, lambda tmp: torch.save(tensors, tmp))
    return path


def write_safetensors(folder: Path, states: dict, meta: dict) -> list[Path]:
    from cl_sim.store import flatten

    tensors = flatten({g: states[g] for g in ("adapter", "head")})
    text = {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}  # safetensors: str -> str
    slots = sorted({k.split("/", 1)[1].rsplit(".", 2)[0] for k in tensors if k.startswith("adapter/")})
    return [_save_tensors(folder / "adapter.safetensors", tensors, text),
            _sidecar(folder, meta, tensors="adapter.safetensors", slots=slots)]


def adapterhub_check(meta: dict) -> None:
    if meta["adapter_kind"] not in ("pfeiffer", "houlsby"):
        raise ConfigError(f"export: --format adapterhub takes bottleneck adapters (pfeiffer, houlsby); this entry "
                          f"is {meta['adapter_kind']} (use --format safetensors)")
    if meta["model_type"] not in ADAPTERHUB_MODELS:
        raise ConfigError(f"export: --format adapterhub supports encoders of type {', '.join(ADAPTERHUB_MODELS)}; "
                          f"{meta['backbone']} is {meta['model_type']} (use --format safetensors)")


def adapter_name(task: str) -> str:
    """AdapterHub names modules by it: no dots or other non-word characters."""
    return re.sub(r"\W", "_", task)


def adapterhub_config(meta: dict) -> dict:
    """AdapterHub's bottleneck config that computes our adapter: see the module docstring."""
    hidden, width = meta["hidden_size"], meta["bottleneck"]
    # AdapterHub's width is int(hidden // reduction_factor): an exact factor, else one that floors to `width`
    factor = hidden // width if hidden % width == 0 else hidden / (width + 0.5)
    return {"architecture": None, "mh_adapter": meta["adapter_kind"] == "houlsby", "output_adapter": True,
            "reduction_factor": factor, "non_linearity": ACTIVATION[meta["non_linearity"]],
            "original_ln_before": False, "original_ln_after": True, "ln_before": False, "ln_after": False,
            "residual_before_ln": True, "adapter_residual_before_ln": False, "scaling": 1.0, "use_gating": False,
            "is_parallel": False, "init_weights": "mam_adapter", "init_weights_seed": None, "dropout": 0.0,
            "leave_out": [], "cross_adapter": False, "inv_adapter": None, "inv_adapter_reduction_factor": None,
            "phm_layer": False, "stochastic_depth": 0.0}


def adapterhub_weights(adapter: dict, name: str) -> dict:
    """Our slot tensors under AdapterHub's names: `<sublayer>.dense` + `down.weight` ->
    `<sublayer>.adapters.NAME.adapter_down.0.weight` (the base model's names, no `bert.` prefix)."""
    out = {}
    for k, v in adapter.items():
        slot, _, param = k.rpartition(".")
        slot, _, part = slot.rpartition(".")
        module = slot.removesuffix(".dense")
        if module == slot or f"{part}.{param}" not in PARAM:
            raise ConfigError(f"export: adapter tensor '{k}' has no AdapterHub counterpart (use --format safetensors)")
        out[f"{module}.adapters.{name}.{PARAM[f'{part}.{param}']}"] = v
    return out


def head_note(meta: dict) -> Optional[str]:
    """Why the head cannot go in AdapterHub's layout, or None when it can."""
    if meta["pooling"] != "cls":
        return (f"head not in AdapterHub's layout: its heads read the first token, this head was trained on "
                f"{meta['pooling']} pooling (its weights are in cl_sim_head.safetensors)")
    if meta["task_kind"] not in ("classification", "regression"):
        return ("head not in AdapterHub's layout: the task kind is unknown or multiple choice (pass the run's "
                "config to name it; the weights are in cl_sim_head.safetensors)")
    return None


def write_adapterhub(folder: Path, states: dict, meta: dict) -> tuple[list[Path], list[str]]:
    from cl_sim.io import atomic_write_json

    name = adapter_name(meta["task"])
    common = {"hidden_size": meta["hidden_size"], "model_class": ADAPTERHUB_MODELS[meta["model_type"]],
              "model_name": meta["backbone"], "model_type": meta["model_type"], "name": name,
              "version": f"cl_sim.{meta['cl_sim_version']}"}
    weights = adapterhub_weights(states["adapter"], name)
    files = [folder / "adapter_config.json", folder / "pytorch_adapter.bin"]
    atomic_write_json(files[0], {**common, "config": adapterhub_config(meta)})
    _torch_save(files[1], weights)
    files.append(_save_tensors(folder / "adapter.safetensors", weights))
    notes = []
    if (why := head_note(meta)) is None:
        labels = meta["labels"] or [f"LABEL_{i}" for i in range(meta["num_outputs"])]
        label2id = {label: i for i, label in enumerate(labels)} if meta["task_kind"] == "classification" else None
        head = {"head_type": "classification", "num_labels": meta["num_outputs"], "layers": 1,
                "activation_function": None, "label2id": label2id, "use_pooler": False, "bias": True,
                "dropout_prob": None}
        tensors = {f"heads.{name}.1.{k.split('.')[-1]}": v for k, v in states["head"].items()}  # 0: dropout, 1: linear
        files.append(folder / "head_config.json")
        atomic_write_json(files[-1], {**common, "config": head, "label2id": label2id})
        files.append(_torch_save(folder / "pytorch_model_head.bin", tensors))
        files.append(_save_tensors(folder / "model_head.safetensors", tensors))
    else:
        notes.append(why)
        files.append(_save_tensors(folder / "cl_sim_head.safetensors", states["head"]))
    files.append(_sidecar(folder, meta, adapterhub_name=name, head_in_adapterhub_layout=why is None))
    return files, notes


# ---------------------------------------------------------------- reading an export back


def load_safetensors(folder: str | Path):
    """(model, tokenizer, metadata) from a `safetensors` export: the backbone by its name, the
    adapter active, the head as "head"; `model.eval()` scores as the stored entry did."""
    from safetensors.torch import load_file

    from cl_sim.config import AdapterConfig
    from cl_sim.phases import fresh_backbone
    from cl_sim.model import AdaptedModel
    from cl_sim.store import unflatten

    folder = Path(folder)
    meta = json.loads((folder / SIDE_CAR).read_text())
    states = unflatten(load_file(folder / "adapter.safetensors"))
    backbone, tokenizer = fresh_backbone(meta["backbone"])
    model = AdaptedModel(backbone, AdapterConfig(**meta["adapter"]), meta["pooling"])
    model.add_adapter("a")
    model.load_adapter("a", states["adapter"])
    model.set_active("a")
    kind = meta["task_kind"] or ("classification" if meta["num_outputs"] > 1 else "regression")
    model.add_head("head", kind, meta["num_outputs"])
    model.load_head("head", states["head"])
    return model.eval(), tokenizer, meta
