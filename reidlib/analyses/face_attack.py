"""Attackers' measures (beyond the paper), with dlib's face descriptor (`reidlib.models.faces`) as the
face-recognition attacker. Scores: identification Rank-1 (query faces against gallery faces, Market-1501's rule) and
verification TAR at a fixed FAR over all pairs of test faces, both with ties broken at random in
expectation, so an attacker that sees identical faces scores exactly chance.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd


def _pairwise(features: np.ndarray) -> np.ndarray:
    f = np.asarray(features, np.float64)
    sq = (f * f).sum(1)
    return np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * f @ f.T, 0))


def _tied(d: np.ndarray, ref: float) -> np.ndarray:
    return np.abs(d - ref) <= 1e-9 * max(1.0, abs(ref))


def identification_hits(features: np.ndarray, pids: Sequence[int], camids: Sequence[int],
                        is_query: Sequence[bool]) -> pd.Series:
    """Each query face's expected Rank-1 hit (0-1) against the gallery faces, ties broken at random.

    Indexed by the query's position; a query without a true match elsewhere is left out.
    Market-1501's rule: a gallery face of the query's identity seen by the query's camera is left out.
    """
    pids, camids, q = np.asarray(pids), np.asarray(camids), np.asarray(is_query, bool)
    d = _pairwise(features)
    hits = {}
    for i in np.flatnonzero(q):
        keep = ~q & ~((pids == pids[i]) & (camids == camids[i]))
        if not (keep & (pids == pids[i])).any():
            continue  # no true match to find
        row, gp = d[i, keep], pids[keep]
        best = _tied(row, row.min())
        hits[int(i)] = float((gp[best] == pids[i]).mean())
    if not hits:
        raise ValueError("no query face has a gallery face of its identity from another camera")
    return pd.Series(hits, name="hit")


def identification_rank1(features: np.ndarray, pids: Sequence[int], camids: Sequence[int],
                         is_query: Sequence[bool]) -> float:
    """Expected Rank-1 (percent) of query faces against gallery faces, ties broken at random."""
    return 100 * float(identification_hits(features, pids, camids, is_query).mean())


def verification_tar(features: np.ndarray, pids: Sequence[int], fars: Sequence[float] = (1e-2, 1e-3)) -> dict:
    """TAR (percent) at each FAR over all pairs of faces: same identity = genuine, else impostor.

    The threshold accepts the floor(FAR x impostors) closest impostor pairs and no more; pairs tied
    at it count as they would in a random order (random tie-breaking, in expectation).
    """
    pids = np.asarray(pids)
    iu = np.triu_indices(len(pids), 1)
    d = _pairwise(features)[iu]
    same = (pids[:, None] == pids[None, :])[iu]
    gen, imp = np.sort(d[same]), np.sort(d[~same])
    if len(gen) == 0 or len(imp) == 0:
        raise ValueError("verification needs genuine and impostor pairs (>= 2 faces of an identity, >= 2 identities)")
    out = {}
    for far in fars:
        k = int(np.floor(far * len(imp)))  # impostor pairs that may be accepted
        if k >= len(imp):
            out[far] = 100.0
            continue
        thr = imp[k]  # the first impostor that may not be accepted
        eps = 1e-9 * max(1.0, abs(thr))
        imp_below, gen_below = int(np.sum(imp < thr - eps)), int(np.sum(gen < thr - eps))
        imp_tied, gen_tied = int(np.sum(_tied(imp, thr))), int(np.sum(_tied(gen, thr)))
        # pairs tied at the threshold in random order: genuine ones expected before its (k - imp_below + 1)-th impostor
        out[far] = 100 * (gen_below + (k - imp_below + 1) * gen_tied / (imp_tied + 1)) / len(gen)
    return out


def attack_scores(features: np.ndarray, faces: pd.DataFrame, fars: Sequence[float] = (1e-2, 1e-3)) -> dict:
    """Rank-1 and TAR@FAR (percent) of an attacker's features for `faces` (pid, camid, split)."""
    tar = verification_tar(features, faces.pid.to_numpy(), fars)
    return {"rank1": identification_rank1(features, faces.pid.to_numpy(), faces.camid.to_numpy(),
                                          (faces.split == "query").to_numpy()),
            **{f"tar_far{far:g}": v for far, v in tar.items()}}


def chance_scores(faces: pd.DataFrame, fars: Sequence[float] = (1e-2, 1e-3)) -> dict:
    """What an attacker who sees identical features for every face scores on `faces` (the floor)."""
    return attack_scores(np.zeros((len(faces), 1), np.float32), faces, fars)

