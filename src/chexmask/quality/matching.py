"""Pair the rows of two CheXmask-format tables that show the same image, by image id.

Rows match on image ids with folders and image extensions stripped (those the package reads,
:data:`chexmask.io.discover.DEFAULT_EXTENSIONS`, by :func:`chexmask.io.lookup.image_stem`);
when file names repeat, on as many trailing path components as make the ids unique.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chexmask.io.lookup import image_stem

__all__ = ["Matching", "match_ids"]


@dataclass(frozen=True)
class Matching:
    """Row pairs of two tables that show the same image.

    Attributes
    ----------
    pairs : list of (int, int)
        Positional row indices (table A, table B).
    keys : list of str
        The normalised id each pair matched on.
    unmatched_a, unmatched_b : list of int
        Rows of A (resp. B) with no partner.
    duplicates_a, duplicates_b : list of int
        Rows dropped because an earlier row of the same table has the same key.
    """

    pairs: list[tuple[int, int]]
    keys: list[str]
    unmatched_a: list[int] = field(default_factory=list)
    unmatched_b: list[int] = field(default_factory=list)
    duplicates_a: list[int] = field(default_factory=list)
    duplicates_b: list[int] = field(default_factory=list)



def _id_parts(image_id: object) -> tuple[str, ...]:
    text = str(image_id).strip().replace("\\", "/")
    parts = [p for p in text.split("/") if p not in ("", ".")] or [""]
    parts[-1] = image_stem(parts[-1])
    return tuple(parts)


def match_ids(ids_a, ids_b) -> Matching:
    """Pair the rows of two tables by image id, robust to folders and extensions.

    Ids are compared on their last path component without its image extension
    (``a/b/x.png`` matches ``x.jpg``). When that repeats within a table (CheXpert's
    ``patientN/studyM/view1_frontal.jpg``), on the shortest number of trailing path
    components that is unique in both tables.

    Parameters
    ----------
    ids_a, ids_b : sequence of str
        Image ids, one per row.

    Returns
    -------
    Matching

    Examples
    --------
    >>> m = match_ids(["p1/s1/view1.jpg", "p2/s1/view1.jpg"], ["s1/view1.png", "data/p2/s1/view1"])
    >>> m.pairs, m.keys
    ([(1, 1)], ['p2/s1/view1'])
    """
    pa, pb = [_id_parts(x) for x in ids_a], [_id_parts(x) for x in ids_b]
    depth = max((len(p) for p in pa + pb), default=1)
    for k in range(1, depth + 1):
        ka, kb = ["/".join(p[-k:]) for p in pa], ["/".join(p[-k:]) for p in pb]
        if len(set(ka)) == len(ka) and len(set(kb)) == len(kb):
            break
    first_b: dict[str, int] = {}
    dup_b = []
    for j, key in enumerate(kb):
        if key in first_b:
            dup_b.append(j)
        else:
            first_b[key] = j
    pairs, keys, unmatched_a, dup_a, seen, used_b = [], [], [], [], set(), set()
    for i, key in enumerate(ka):
        if key in seen:
            dup_a.append(i)
            continue
        seen.add(key)
        if key in first_b:
            pairs.append((i, first_b[key]))
            keys.append(key)
            used_b.add(first_b[key])
        else:
            unmatched_a.append(i)
    unmatched_b = [j for j in first_b.values() if j not in used_b]
    return Matching(pairs, keys, unmatched_a, sorted(unmatched_b), dup_a, dup_b)
