"""Class sets: which K classes VAR compares at every pixel.

A class set is parsed from a spec string that works on the command line:

* ``"top3"``: the 3 most probable classes;
* ``"top3+worst"``: the 3 most probable classes and the least probable one (the paper's choice);
* ``"best-vs-worst"``: the most and the least probable class;
* ``"281,285,287"``: a predefined list (the classes of a 2x2 grid, disease subtypes, ...).

Resolving a class set against logits ``[B, num_classes]`` gives a ``LongTensor [B, K]``. The target
class is always in the set: for ``top`` sets it takes the first column, and a predefined list that
lacks it is an error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import torch

from .presets import DEFAULT_CLASSES

if TYPE_CHECKING:
    from torch import Tensor


__all__ = [
    "DEFAULT_CLASSES",
    "ClassSet",
    "ClassesLike",
    "class_id",
    "class_rule",
    "class_set",
    "is_ranked",
    "named_class_set",
    "most_probable",
    "parse_class_set",
    "resolve_classes",
    "validate_classes",
]

_TOP = re.compile(r"^top(\d+)(\+worst)?$")
_IDS = re.compile(r"[\d,\s-]*")



@dataclass(frozen=True)
class ClassSet:
    """A class-set rule.

    Attributes:
        spec: The spec string it was parsed from (normalised).
        top: Number of most probable classes (0 for a predefined list).
        worst: Whether the least probable class is appended.
        fixed: The predefined classes, in order (empty for ``top`` sets).
    """

    spec: str
    top: int = 0
    worst: bool = False
    fixed: tuple[int, ...] = ()

    @property
    def size(self) -> int:
        """Number of classes K in the set."""
        return len(self.fixed) if self.fixed else self.top + int(self.worst)

    @property
    def ranked(self) -> bool:
        """Whether the set is chosen by rank (``topN``, ``topN+worst``, ``best-vs-worst``), not predefined.

        Example:
            >>> parse_class_set("top3").ranked, parse_class_set("281,285").ranked
            (True, False)
        """
        return not self.fixed

    def __call__(self, logits: Tensor, target: Tensor | int | None = None) -> Tensor:
        """Resolve the set for a batch.

        Args:
            logits: Model outputs ``[B, num_classes]``.
            target: Target class per sample (``[B]`` or an int); default: the predicted class.

        Returns:
            ``LongTensor [B, K]``; column 0 is the target for ``top`` sets.

        Raises:
            ValueError: If the set does not fit the number of classes, or a target is out of range or
                missing from a predefined list.
        """
        if logits.dim() != 2:
            raise ValueError(f"logits must have shape [B, num_classes], got {tuple(logits.shape)}")
        b, n = logits.shape
        tgt = _as_target(target, b, n, logits.device)
        if self.fixed:
            classes = torch.tensor(self.fixed, dtype=torch.long, device=logits.device).expand(b, -1)
            validate_classes(classes, n)
            if tgt is not None:
                missing = ~(classes == tgt[:, None]).any(1)
                if missing.any():
                    i = int(missing.nonzero()[0])
                    raise ValueError(
                        f"target class {int(tgt[i])} of sample {i} is not in the class set {list(self.fixed)}"
                    )
            return classes.clone()
        if self.size > n:
            raise ValueError(f"class set {self.spec!r} needs {self.size} classes, the model has {n}")
        order = logits.detach().argsort(dim=1, descending=True).tolist()
        rows = []
        for i, ranked in enumerate(order):
            first = ranked[0] if tgt is None else int(tgt[i])
            # the least probable class is kept for the "worst" slot, unless it is the target itself
            worst = next(c for c in reversed(ranked) if c != first) if self.worst else None
            rest = [c for c in ranked if c not in (first, worst)][: self.top - 1]
            rows.append([first, *rest] + ([worst] if self.worst else []))
        return torch.tensor(rows, dtype=torch.long, device=logits.device)


#: What a class set may be given as (a spec, a :class:`ClassSet`, class ids, or a ``[B, K]`` tensor).
ClassesLike: TypeAlias = "str | ClassSet | Sequence[int] | Tensor"


def class_rule(classes: ClassesLike | None, batch: int, device: torch.device | str) -> ClassSet | Tensor | None:
    """A class-set argument as a rule: a :class:`ClassSet`, checked ``[B, K]`` indices, or ``None``.

    Args:
        classes: A spec string, a :class:`ClassSet`, a list of classes shared by the batch, a ``[B, K]``
            tensor, or ``None`` (only the target class).
        batch: Batch size.
        device: Device of the indices.

    Raises:
        ValueError: On an invalid spec or tensor.
    """
    if classes is None:
        return None
    if isinstance(classes, str | ClassSet):
        return parse_class_set(classes)
    if not isinstance(classes, torch.Tensor) and hasattr(classes, "__array__"):  # a NumPy array: [K] or [B, K]
        array: Tensor = torch.as_tensor(classes)
        classes = array.tolist() if array.dim() == 1 else array
    items = list(classes) if not isinstance(classes, torch.Tensor) else None
    if items is not None and items and all(isinstance(row, Sequence) and not isinstance(row, str) for row in items):
        rows = [list(row) for row in items]  # per-sample class sets [B, K], as a tensor would give them
        if len({len(row) for row in rows}) != 1 or not all(_is_id(c) for row in rows for c in row):
            raise ValueError("per-sample class sets must be lists of class ids of one length, e.g. [[1, 4], [7, 9]]")
        classes = torch.as_tensor(rows)
    if isinstance(classes, torch.Tensor):
        rule = validate_classes(classes.to(device))
        if rule.shape[0] != batch:
            raise ValueError(f"classes has {rule.shape[0]} rows for a batch of {batch}")
        return rule
    if not items or not all(_is_id(c) for c in items):
        raise ValueError(f"classes must be class ids, per-sample lists of them, a [B, K] tensor or a spec such as "
                         f"'top3+worst'; got {str(classes)[:80]}")
    return validate_classes(torch.as_tensor([items], device=device).expand(batch, -1))


def is_ranked(rule: ClassesLike | None) -> bool:
    """Whether a class-set rule is chosen by rank (a ranked :class:`ClassSet`); lists and tensors are predefined.

    The one answer to "does ``tau_ranked`` apply" (:meth:`~attrdist.var.VARConfig.margin`).

    Example:
        >>> is_ranked("top3+worst"), is_ranked(parse_class_set("top3+worst")), is_ranked([281, 285])
        (False, True, False)
    """
    return isinstance(rule, ClassSet) and rule.ranked


def _is_id(value: object) -> bool:
    """Whether a value is a class id (an int, a NumPy or 0-d torch integer), not a bool or a float."""
    if isinstance(value, torch.Tensor):
        return value.dim() == 0 and not value.dtype.is_floating_point and value.dtype != torch.bool
    return isinstance(value, int | _np_integer()) and not isinstance(value, bool)


def _np_integer() -> type:
    import numpy as np

    return np.integer


def resolve_classes(
    rule: ClassSet | Tensor | None, logits: Tensor, target: Tensor | int | None
) -> tuple[Tensor, Tensor]:
    """The class set and the target of every sample, the one rule every method and VAR follow.

    * no class set: the target alone (default: the predicted class), ``K = 1``;
    * a ranked set (``topN``, ``topN+worst``, ``best-vs-worst``): the target first (default: the predicted
      class), then the ranked classes;
    * a predefined set (a list, ``"281,285,287"``, a tensor): the set as given; the target must be in it
      (default: the set's most probable class).

    Args:
        rule: What :func:`class_rule` returned.
        logits: Model outputs ``[B, num_classes]``.
        target: Target class per sample (``[B]`` or an int), or ``None``.

    Returns:
        ``(classes [B, K], target [B])``, class ids.

    Raises:
        ValueError: If a target is out of range or not in a predefined set.
    """
    b, n = logits.shape
    tgt = _as_target(target, b, n, logits.device)
    if rule is None:
        tgt = logits.detach().argmax(1) if tgt is None else tgt
        return tgt[:, None].clone(), tgt
    classes = rule(logits, tgt) if isinstance(rule, ClassSet) else validate_classes(rule, n)
    if tgt is None:
        tgt = classes[:, 0] if is_ranked(rule) else most_probable(classes, logits.detach())
    missing = ~(classes == tgt[:, None]).any(1)
    if missing.any():
        i = int(missing.nonzero()[0])
        raise ValueError(f"target class {int(tgt[i])} of sample {i} is not in its class set {classes[i].tolist()}")
    return classes, tgt


def most_probable(classes: Tensor, logits: Tensor) -> Tensor:
    """The most probable class of each row of a class set: the default target of a predefined set.

    Args:
        classes: Class indices ``[B, K]``.
        logits: Model outputs ``[B, num_classes]``.

    Returns:
        ``[B]`` class indices.
    """
    return classes.gather(1, logits.gather(1, classes).argmax(1, keepdim=True)).squeeze(1)


def _as_target(target: Tensor | int | None, b: int, n: int, device: torch.device) -> Tensor | None:
    if target is None:
        return None
    t = torch.as_tensor(target, dtype=torch.long, device=device).flatten()
    if t.numel() == 1:
        t = t.expand(b)
    if t.numel() != b:
        raise ValueError(f"got {t.numel()} targets for a batch of {b}")
    if ((t < 0) | (t >= n)).any():
        raise ValueError(f"target class(es) {t[(t < 0) | (t >= n)].tolist()} out of range [0, {n})")
    return t


def validate_classes(classes: Tensor, num_classes: int | None = None) -> Tensor:
    """Check a ``[B, K]`` class tensor: integer, in range, no duplicates within a row.

    Args:
        classes: Class indices ``[B, K]``.
        num_classes: Number of model outputs, if known.

    Returns:
        The classes as ``LongTensor``.

    Raises:
        ValueError: On a wrong shape, a non-integer dtype, an out-of-range index or a duplicate.
    """
    if not isinstance(classes, torch.Tensor):
        classes = torch.as_tensor(classes)
    if classes.dim() != 2:
        raise ValueError(f"classes must have shape [B, K], got {tuple(classes.shape)}")
    if classes.dtype.is_floating_point or classes.dtype == torch.bool or classes.is_complex():
        raise ValueError(f"classes must be integer indices, got dtype {classes.dtype}")
    classes = classes.long()
    if classes.shape[1] < 1:
        raise ValueError("classes must hold at least one class per sample")
    hi = num_classes if num_classes is not None else None
    bad = (classes < 0) if hi is None else (classes < 0) | (classes >= hi)
    if bad.any():
        raise ValueError(
            f"class index(es) {sorted(set(classes[bad].tolist()))} out of range [0, {hi if hi else 'inf'})"
        )
    srt = classes.sort(1).values
    dup = (srt[:, 1:] == srt[:, :-1]).any(1)
    if dup.any():
        i = int(dup.nonzero()[0])
        raise ValueError(f"duplicate classes in the set of sample {i}: {classes[i].tolist()}")
    return classes


def parse_class_set(spec: str | Sequence[int] | ClassSet) -> ClassSet:
    """Parse a class-set spec.

    Args:
        spec: ``"topN"``, ``"topN+worst"``, ``"best-vs-worst"``, a comma-separated list of indices,
            a sequence of indices, or a :class:`ClassSet`.

    Returns:
        The class set.

    Raises:
        ValueError: On an unknown spec, a set of fewer than 2 classes, negative or duplicate indices.

    Example:
        >>> parse_class_set("top3+worst").size
        4
    """
    if isinstance(spec, ClassSet):
        return spec
    if not isinstance(spec, str):
        idx = tuple(int(i) for i in spec)
        return _fixed(idx, ",".join(map(str, idx)))
    s = spec.strip().lower().replace(" ", "")
    if s in ("best-vs-worst", "bestvsworst", "best+worst"):
        return ClassSet(spec="best-vs-worst", top=1, worst=True)
    m = _TOP.match(s)
    if m:
        top = int(m.group(1))
        worst = bool(m.group(2))
        if top < 1:
            raise ValueError(f"class set {spec!r}: top-k needs k >= 1")
        cs = ClassSet(spec=s, top=top, worst=worst)
        if cs.size < 2:
            raise ValueError(f"class set {spec!r} has K=1 class; VAR needs at least 2 (try 'top1+worst')")
        return cs
    if re.fullmatch(r"-?\d+(,-?\d+)*", s):
        return _fixed(tuple(int(p) for p in s.split(",")), s)
    raise ValueError(
        f"unknown class set {spec!r}; use 'topN', 'topN+worst', 'best-vs-worst' or a list like '281,285,287'"
    )


def _fixed(idx: tuple[int, ...], spec: str) -> ClassSet:
    if len(idx) < 2:
        raise ValueError(f"class set {spec!r} has K={len(idx)} class; VAR needs at least 2")
    if any(i < 0 for i in idx):
        raise ValueError(f"class set {spec!r} has negative class indices")
    if len(set(idx)) != len(idx):
        raise ValueError(f"class set {spec!r} has duplicate classes")
    return ClassSet(spec=spec, fixed=idx)


def class_id(query: str | int, names: Sequence[str]) -> int:
    """A class id from an id (``"285"``) or a class name (``"Egyptian cat"``, case-insensitive).

    Args:
        query: An id or a name of the model's label set.
        names: The model's class names, in id order.

    Returns:
        The class id.

    Raises:
        ValueError: On an unknown name (with the closest names: "did you mean"), a name shared by several
            classes (naming their ids), or an id outside the label set.

    Example:
        >>> class_id("Tiger Cat", ["tabby", "tiger cat", "tiger"]), class_id("2", ["tabby", "tiger cat", "tiger"])
        (1, 2)
    """
    text = str(query).strip()
    if text.lstrip("-").isdigit():
        i = int(text)
        if not 0 <= i < len(names):
            raise ValueError(f"class id {i} is outside the model's {len(names)} classes (0..{len(names) - 1})")
        return i
    folded = text.casefold()
    hits = [i for i, n in enumerate(names) if n.casefold() == folded]
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise ValueError(f"class name {text!r} names {len(hits)} classes: "
                         + ", ".join(f"{i} ({names[i]})" for i in hits) + "; give the id")
    import difflib

    lower = {n.casefold(): i for i, n in enumerate(names)}
    close = difflib.get_close_matches(folded, list(lower), n=3, cutoff=0.6)
    close += [n for n in lower if folded in n and n not in close][: 5 - len(close)]
    hint = f"; did you mean {', '.join(repr(names[lower[c]]) for c in close)}?" if close else ""
    raise ValueError(f"no class named {text!r}{hint} (attrdist classes QUERY searches the label set)")


def named_class_set(spec: str, names: Sequence[str]) -> str:
    """A class-set spec whose listed classes may be names: ``"tiger cat, espresso"`` -> ``"282,967"``.

    Ranked specs (``top3+worst``, ``best-vs-worst``) are returned as they are.

    Example:
        >>> named_class_set("Tiger cat,0", ["tabby", "tiger cat"]), named_class_set("top3", ["a"])
        ('1,0', 'top3')
    """
    text = spec.strip()
    if text == "best-vs-worst" or _TOP.match(text):
        return text
    return ",".join(str(class_id(part, names)) for part in text.split(",") if part.strip())



def class_set(spec: str | ClassSet | Sequence[int], names: Sequence[str]) -> ClassSet:
    """A class set as a user gives it, checked against a model's label set: the one reading of a class-set spec.

    A spec (``top3+worst``, ``best-vs-worst``, ``281,285,287``) or a list of class ids and names of the label set
    (``"tabby, tiger cat, 285"``, names case-insensitive); the command line, :func:`~attrdist.explain.explain_image`
    and the web explorer read class sets with it.

    Args:
        spec: The spec string, a :class:`ClassSet`, or class ids.
        names: The model's class names, in id order.

    Returns:
        The class set (listed names become their ids).

    Raises:
        ValueError: On an invalid spec, an unknown class name ("did you mean"), or a set that does not fit the
            label set.

    Example:
        >>> names = ["tabby", "tiger cat", "tiger"]
        >>> class_set("Tiger cat, 0", names).fixed, class_set("top2", names).spec
        ((1, 0), 'top2')
    """
    if isinstance(spec, str):
        try:
            rule = parse_class_set(spec)
        except ValueError:
            if _IDS.fullmatch(spec):  # ids only: the spec's own error
                raise
            rule = parse_class_set(named_class_set(spec, names))  # class names, alone or among ids
    else:
        rule = parse_class_set(spec)
    n = len(names)
    if rule.size > n or any(c >= n for c in rule.fixed):
        raise ValueError(f"class set {rule.spec[:80]!r} does not fit the model's {n} classes (ids 0..{n - 1})")
    return rule
