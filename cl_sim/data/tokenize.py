"""Tokenise a split once, then iterate over padded batches of torch tensors.

Padding is dynamic (to the longest sequence of each batch). Shuffling uses its own
``numpy`` Generator seeded by ``seed``, never the global RNG, so the batch order is a
pure function of (split, seed); pass ``seed + epoch`` for a new order per epoch.

Example::

    enc = encode_split(task.splits["train"], task.kind, tokenizer, max_length=128)
    for epoch in range(3):
        for batch in iterate(enc, 32, shuffle=True, seed=epoch, pad_id=tokenizer.pad_token_id):
            out = model(**batch)  # input_ids (B, T) or (B, C, T) for multiple choice
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from cl_sim.data.task import Split
from cl_sim.errors import DataError


@dataclass(frozen=True)
class EncodedSplit:
    """Token ids of a split, without padding.

    input_ids: per example a list of ids (classification, regression) or, for multiple
        choice, a list of C id lists, one per (context, choice) pair.
    token_type_ids: same nesting, or None when the tokenizer does not return them.
    labels: int64 class / choice ids or float32 targets, shape (N,).
    """

    kind: str
    input_ids: list
    token_type_ids: list | None
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.input_ids)


def _tokenize(tokenizer, first: list[str], second: list[str] | None, max_length: int):
    enc = tokenizer(
        first, second, truncation=True, max_length=max_length, padding=False,
        return_attention_mask=False,  # rebuilt from lengths when padding
    )
    return enc["input_ids"], enc.get("token_type_ids")


def encode_split(split: Split, kind: str, tokenizer, max_length: int = 128) -> EncodedSplit:
    """Tokenise every example of ``split`` once (truncated to ``max_length`` tokens).

    Args:
        split: the split; texts are 1 or 2 segments, or (context, choice_1, ..) for
            multiple choice.
        kind: the task kind ("classification", "regression", "multiple_choice").
        tokenizer: a Hugging Face tokenizer (fast ones are much faster).
        max_length: maximum tokens per sequence (per (context, choice) pair for multiple choice).

    Returns:
        The ``EncodedSplit``.

    Raises:
        DataError: more than two text segments, or a varying number of choices.
    """
    texts = split.texts
    if not texts:
        return EncodedSplit(kind, [], None, np.asarray(split.labels))
    if kind == "multiple_choice":
        n_choices = {len(t) - 1 for t in texts}
        if len(n_choices) > 1:
            raise DataError(f"multiple-choice examples have varying choice counts: {n_choices}")
        c = n_choices.pop()
        first = [t[0] for t in texts for _ in range(c)]
        second = [t[1 + j] for t in texts for j in range(c)]
        ids, types = _tokenize(tokenizer, first, second, max_length)
        ids = [ids[i * c:(i + 1) * c] for i in range(len(texts))]
        types = None if types is None else [types[i * c:(i + 1) * c] for i in range(len(texts))]
    else:
        n_segments = {len(t) for t in texts}
        if n_segments - {1, 2} or len(n_segments) > 1:
            raise DataError(f"expected 1 or 2 text segments per example, got {sorted(n_segments)}")
        segments = list(zip(*texts))
        first = list(segments[0])
        second = list(segments[1]) if len(segments) > 1 else None
        ids, types = _tokenize(tokenizer, first, second, max_length)
    return EncodedSplit(kind, ids, types, np.asarray(split.labels))


def _pad(seqs: list, multi: bool, pad_value: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad ``seqs`` to their longest: (ids, mask), each (B, T), or (B, C, T) if ``multi``."""
    rows = [s for group in seqs for s in group] if multi else seqs
    length = max(len(s) for s in rows)
    ids = np.full((len(rows), length), pad_value, dtype=np.int64)
    mask = np.zeros((len(rows), length), dtype=np.int64)
    for i, s in enumerate(rows):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
    shape = (len(seqs), -1, length) if multi else (len(seqs), length)
    return ids.reshape(shape), mask.reshape(shape)


def collate(encoded: EncodedSplit, idx: np.ndarray, pad_id: int) -> dict[str, torch.Tensor]:
    """One batch of rows ``idx``: ``input_ids``, ``attention_mask``, ``token_type_ids`` (if
    the tokenizer made them; padded with 0), ``labels`` (long, or float for regression) and
    ``index`` (the rows ``idx``, for per-example caches such as a frozen teacher's outputs)."""
    multi = encoded.kind == "multiple_choice"
    input_ids, mask = _pad([encoded.input_ids[i] for i in idx], multi, pad_id)
    batch = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}
    if encoded.token_type_ids is not None:
        types, _ = _pad([encoded.token_type_ids[i] for i in idx], multi, 0)
        batch["token_type_ids"] = torch.from_numpy(types)
    dtype = torch.float32 if encoded.kind == "regression" else torch.int64
    batch["labels"] = torch.as_tensor(encoded.labels[idx], dtype=dtype)
    batch["index"] = torch.as_tensor(np.asarray(idx, dtype=np.int64))
    return batch


def length_order(encoded: EncodedSplit) -> np.ndarray:
    """Rows by token count, shortest first (stable): batches taken in this order pad each row to
    about its own length. For multiple choice a row's count is its longest (context, choice) pair."""
    multi = encoded.kind == "multiple_choice"
    lengths = [max(map(len, ids)) if multi else len(ids) for ids in encoded.input_ids]
    return np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable")


def iterate(
    encoded: EncodedSplit,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    pad_id: int = 0,
    indices=None,
) -> Iterator[dict[str, torch.Tensor]]:
    """Yield padded batches of an ``EncodedSplit``.

    Args:
        encoded: the pre-tokenised split.
        batch_size: examples per batch (the last batch may be smaller).
        shuffle: permute the rows with ``np.random.default_rng(seed)``.
        seed: shuffle seed (independent of the global RNG).
        pad_id: the tokenizer's ``pad_token_id``.
        indices: optional subset of rows (e.g. a low-shot sample), in this order.

    Yields:
        Dicts of tensors, see ``collate``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = np.arange(len(encoded)) if indices is None else np.asarray(indices, dtype=np.int64)
    if shuffle:
        order = order[np.random.default_rng(seed).permutation(len(order))]
    for start in range(0, len(order), batch_size):
        yield collate(encoded, order[start:start + batch_size], pad_id)


def batches(
    split: Split,
    task_kind: str,
    tokenizer,
    batch_size: int,
    max_length: int = 128,
    shuffle: bool = False,
    seed: int = 0,
    indices=None,
) -> Iterator[dict[str, torch.Tensor]]:
    """Tokenise ``split`` and yield its batches (one pass; use ``encode_split`` +
    ``iterate`` to avoid re-tokenising every epoch). Arguments as in those two."""
    encoded = encode_split(split, task_kind, tokenizer, max_length)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    yield from iterate(encoded, batch_size, shuffle, seed, pad_id, indices)
