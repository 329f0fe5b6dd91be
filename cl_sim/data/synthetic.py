"""Built-in synthetic task family: deterministic, seeded, no files.

Every task is a text classification over short "sentences" of common English filler
words with one to three *signal* words inserted. A hidden rule maps each signal word to
a class; an example of class c carries only signal words that the rule maps to c, so a
model that learns which words matter can reach ~100% accuracy.

A *family* names a base rule: a seeded, balanced partition of the signal words into
classes. A task in the family keeps each word's base class with probability
``relatedness`` and otherwise draws a task-specific class for it. Tasks of one family
with relatedness 1 share the rule (maximal transfer); different families are unrelated
rules over the *same* words, so they conflict and sequential fine-tuning forgets.

Every random choice comes from a ``numpy.random.Generator`` whose seed is a sha256 of
the family / task name / seed strings (never Python's salted ``hash()``), so tasks are
identical across processes and machines.

Example::

    task = make_synthetic_task("syn0", family="alpha", seed=0)
    stream = default_stream(n_tasks=3, kind="unrelated")
"""
from __future__ import annotations

import numpy as np

from cl_sim.data.task import Split, Task, stable_seed
from cl_sim.errors import ConfigError

# Lowercase dictionary words that a BERT uncased WordPiece vocabulary keeps as one token
# (checked against the MiniLM vocab in tests/data/test_synthetic.py).
SIGNAL_WORDS: tuple[str, ...] = tuple("""
river green apple stone cloud silver garden forest winter ocean horse window candle bridge
mountain tiger lemon violet thunder marble desert island rabbit copper valley eagle orange
pepper castle piano meadow anchor basket feather hammer jacket ladder mirror needle pillow
rocket saddle tunnel wagon blanket bottle carpet cherry diamond engine falcon glove harbor
jungle kettle lantern magnet onion parrot planet
""".split())

FILLER_WORDS: tuple[str, ...] = tuple("""
the a an of to and in on at for with from by as is was are were be been it this that these
those there here then than so but or if when while after before over under into onto about
above below between through during without within among along across around behind beyond
near far very quite rather just only also even still again already soon often never always
sometimes perhaps maybe once twice some many much more most few less least each every any
all both either neither other another such same own one two three four five six seven eight
nine ten first second third last next new old good great small large long short high low big
little young early late right left day week month year time way thing place part side end
point case fact group number world life people man woman child hand eye head house room door
table chair book paper letter word name story idea question answer reason result change work
job home school city town road street car train bus shop market office morning evening night
today tomorrow yesterday moment hour minute said made went came took gave found told asked
seemed felt kept brought began showed heard let put set turned moved lived stood sat ran
walked talked looked called tried wanted needed usually really simply clearly certainly
probably
""".split())

SYNTHETIC_DEFAULT: dict = {
    "n_train": 400,
    "n_dev": 200,
    "n_test": 200,
    "n_classes": 2,
}  # make_synthetic_task's defaults, as data (e.g. for configs)
RELATED_RELATEDNESS = 0.8  # default_stream(kind="related")

_FILLER_RANGE = (6, 14)  # inclusive
_SIGNAL_RANGE = (1, 3)  # inclusive


def _rng(*parts: object) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(stable_seed(*parts)))


def base_rule(family: str, n_classes: int = 2) -> dict[str, int]:
    """The family's base partition: signal word -> class, balanced over classes.

    Args:
        family: family name; the partition depends only on it and ``n_classes``.
        n_classes: number of classes.

    Returns:
        A dict mapping every word of ``SIGNAL_WORDS`` to a class id in ``[0, n_classes)``.
    """
    _check_classes(n_classes)
    order = _rng("family", family, n_classes).permutation(len(SIGNAL_WORDS))
    return {SIGNAL_WORDS[w]: int(i % n_classes) for i, w in enumerate(order)}


def task_rule(
    family: str, name: str, relatedness: float = 1.0, n_classes: int = 2
) -> dict[str, int]:
    """The rule of one task: the family's base rule, perturbed per word.

    Each word keeps its base class with probability ``relatedness``; otherwise it gets a
    class drawn uniformly for this task (seeded by family + name), which may coincide
    with the base class. Every class keeps at least one word.

    Args:
        family: family name (defines the base rule).
        name: task name (seeds the task-specific part).
        relatedness: probability in [0, 1] that a word follows the base rule.
        n_classes: number of classes.

    Returns:
        A dict signal word -> class id.
    """
    if not 0.0 <= relatedness <= 1.0:
        raise ConfigError(
            f"synthetic task {name!r}: relatedness must be in [0, 1], got {relatedness}"
        )
    rule = base_rule(family, n_classes)
    rng = _rng("task", family, name, n_classes)
    keep = rng.random(len(SIGNAL_WORDS)) < relatedness
    own = rng.integers(0, n_classes, size=len(SIGNAL_WORDS))
    for i, word in enumerate(SIGNAL_WORDS):
        if not keep[i]:
            rule[word] = int(own[i])
    _fill_empty_classes(rule, n_classes)
    return rule


def _fill_empty_classes(rule: dict[str, int], n_classes: int) -> None:
    """Move one word from the largest class to every empty class (deterministic)."""
    for c in range(n_classes):
        if not any(v == c for v in rule.values()):
            counts = np.bincount(list(rule.values()), minlength=n_classes)
            donor = int(np.argmax(counts))
            word = next(w for w in rule if rule[w] == donor)
            rule[word] = c


def _check_classes(n_classes: int) -> None:
    if not 2 <= n_classes <= len(SIGNAL_WORDS) // 3:
        raise ConfigError(
            f"synthetic tasks need 2 <= n_classes <= {len(SIGNAL_WORDS) // 3}, got {n_classes}"
        )


def _make_split(
    rule: dict[str, int], n: int, n_classes: int, rng: np.random.Generator, n_filler: int
) -> Split:
    """``n`` examples with balanced labels drawn from ``rng``."""
    words_of = [[w for w in rule if rule[w] == c] for c in range(n_classes)]
    fillers = FILLER_WORDS[:n_filler]
    labels = rng.permutation(np.arange(n) % n_classes).astype(np.int64)
    texts = []
    for label in labels:
        n_fill = int(rng.integers(_FILLER_RANGE[0], _FILLER_RANGE[1] + 1))
        words = [fillers[i] for i in rng.integers(0, len(fillers), size=n_fill)]
        n_sig = int(rng.integers(_SIGNAL_RANGE[0], _SIGNAL_RANGE[1] + 1))
        pool = words_of[label]
        for j in rng.integers(0, len(pool), size=n_sig):
            words.insert(int(rng.integers(0, len(words) + 1)), pool[j])
        texts.append((" ".join(words),))
    return Split(tuple(texts), labels)


def make_synthetic_task(
    name: str,
    family: str,
    relatedness: float = 1.0,
    n_train: int = 400,
    n_dev: int = 200,
    n_test: int = 200,
    n_classes: int = 2,
    seed: int = 0,
    tenant: str = "default",
    n_signal_words: int = len(SIGNAL_WORDS),
    n_filler_words: int = len(FILLER_WORDS),
) -> Task:
    """Build one synthetic classification task (metric: accuracy).

    Args:
        name: task name (also seeds the task-specific part of the rule).
        family: rule family; tasks of one family share the base rule.
        relatedness: probability in [0, 1] that a signal word keeps the family's class.
        n_train: train examples (labels balanced).
        n_dev: dev examples; 0 leaves no dev split.
        n_test: test examples; 0 leaves no test split.
        n_classes: number of classes (2 .. 20).
        seed: seeds the example texts (not the rule).
        tenant: owning tenant.
        n_signal_words: how many signal words carry the rule (fewer = easier; tiny random
            test backbones need ~12, pretrained ones handle all 60).
        n_filler_words: size of the filler vocabulary (fewer = easier).

    Returns:
        A ``Task`` with splits train / dev / test, single-segment texts.

    Raises:
        ConfigError: relatedness outside [0, 1], n_classes out of range, n_train < n_classes.
    """
    _check_classes(n_classes)
    if n_train < n_classes or n_dev < 0 or n_test < 0:
        raise ConfigError(
            f"synthetic task {name!r}: need n_train >= n_classes and n_dev, n_test >= 0 "
            f"(got n_train={n_train}, n_dev={n_dev}, n_test={n_test})"
        )
    if not (n_classes <= n_signal_words <= len(SIGNAL_WORDS) and 1 <= n_filler_words <= len(FILLER_WORDS)):
        raise ConfigError(f"synthetic task {name!r}: n_signal_words must be in [{n_classes}, {len(SIGNAL_WORDS)}] "
                          f"and n_filler_words in [1, {len(FILLER_WORDS)}]")
    full = task_rule(family, name, relatedness, n_classes)
    rule = {w: full[w] for w in SIGNAL_WORDS[:n_signal_words]}
    _fill_empty_classes(rule, n_classes)
    splits = {}
    for split_name, n in (("train", n_train), ("dev", n_dev), ("test", n_test)):
        if n > 0:
            rng = _rng("text", family, name, seed, split_name)
            splits[split_name] = _make_split(rule, n, n_classes, rng, n_filler_words)
    labels = tuple(f"class_{c}" for c in range(n_classes))
    return Task(name, "classification", labels, "accuracy", splits, tenant)


def default_stream(
    n_tasks: int = 3, kind: str = "unrelated", seed: int = 0, **task_kwargs
) -> list[Task]:
    """A ready-made stream of synthetic tasks ``syn0, syn1, ...``.

    Args:
        n_tasks: number of tasks.
        kind: ``"unrelated"`` (one family per task: conflicting rules, shows forgetting)
            or ``"related"`` (one family, relatedness 0.8: shows transfer).
        seed: text seed shared by all tasks.
        **task_kwargs: passed to ``make_synthetic_task`` (n_train, n_classes, tenant, ...).

    Returns:
        The tasks in arrival order.
    """
    if kind not in ("unrelated", "related"):
        raise ConfigError(f"default_stream kind must be 'unrelated' or 'related', got {kind!r}")
    tasks = []
    for i in range(n_tasks):
        if kind == "unrelated":
            family, relatedness = f"family{i}", 1.0
        else:
            family, relatedness = "shared", RELATED_RELATEDNESS
        kwargs = {"relatedness": relatedness, "seed": seed, **task_kwargs}
        tasks.append(make_synthetic_task(f"syn{i}", family, **kwargs))
    return tasks
