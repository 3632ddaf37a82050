"""Attackers' measures (beyond the paper), with dlib's face descriptor (`reidlib.models.faces`) as the
face-recognition attacker. Scores: identification Rank-1 and mAP (every face the probe against all the others,
Market-1501's rule) and verification TAR at a fixed FAR over all pairs of test faces. Rank-1 and TAR break ties at
random in expectation, mAP takes a tie as one step, so an attacker that sees identical faces scores chance.
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


def _galleries(pids: np.ndarray, camids: np.ndarray):
    """Each face as the probe, with its gallery: every other face, less the probe identity's faces from the probe's
    camera (Market-1501's rule); (probe index, gallery mask) for probes whose identity is in their gallery."""
    for i in range(len(pids)):
        keep = ~((pids == pids[i]) & (camids == camids[i]))
        if (keep & (pids == pids[i])).any():
            yield i, keep


def probe_count(pids: Sequence[int], camids: Sequence[int]) -> int:
    """How many faces are probes (`_galleries`): those whose identity another camera also shows."""
    return sum(1 for _ in _galleries(np.asarray(pids), np.asarray(camids)))


def _probes(features: np.ndarray, pids: Sequence[int], camids: Sequence[int]):
    """Each probe's index, its distances to its gallery and which gallery faces are its identity's; refused
    when no face is a probe."""
    pids, camids = np.asarray(pids), np.asarray(camids)
    d = _pairwise(features)
    found = False
    for i, keep in _galleries(pids, camids):
        found = True
        yield i, d[i, keep], pids[keep] == pids[i]
    if not found:
        raise ValueError("no face has another face of its identity from another camera")


def identification_hits(features: np.ndarray, pids: Sequence[int], camids: Sequence[int]) -> pd.Series:
    """Each face's expected Rank-1 hit (0-1) as the probe against all the others (`_galleries`), ties broken at
    random. Indexed by the probe's position; a face whose identity no other camera shows is left out.

    Every face is a probe, not only a query split's: four times the probes of Market's query/gallery split, so
    the score moves less from one trained attacker to the next.
    """
    hits = {i: float(rel[_tied(row, row.min())].mean()) for i, row, rel in _probes(features, pids, camids)}
    return pd.Series(hits, name="hit")


def identification_rank1(features: np.ndarray, pids: Sequence[int], camids: Sequence[int]) -> float:
    """Expected Rank-1 (percent) of every face against the others, ties broken at random."""
    return 100 * float(identification_hits(features, pids, camids).mean())


def _average_precision(dist: np.ndarray, relevant: np.ndarray) -> float:
    """Average precision of a ranking by distance, tied distances taken as one step (each tie group's precision
    at its end, as scikit-learn's `average_precision_score`). Hand-written: ten lines over tie groups."""
    order = np.argsort(dist, kind="stable")
    d, rel = dist[order], relevant[order]
    ends = np.append(np.flatnonzero(np.abs(np.diff(d)) > 1e-9 * np.maximum(1.0, np.abs(d[1:]))), len(d) - 1)
    hits = np.cumsum(rel)[ends]
    gained = np.diff(np.append(0, hits))
    return float(np.sum(gained * hits / (ends + 1)) / rel.sum())


def identification_aps(features: np.ndarray, pids: Sequence[int], camids: Sequence[int]) -> pd.Series:
    """Each probe's average precision (percent) against all the other faces (`_galleries`), indexed by the probe's
    position: what a bootstrap over probes resamples."""
    return pd.Series({i: 100 * _average_precision(row, rel) for i, row, rel in _probes(features, pids, camids)},
                     name="ap")


def identification_map(features: np.ndarray, pids: Sequence[int], camids: Sequence[int]) -> float:
    """mAP (percent) of every face against the others (`_galleries`): the whole ranking, not only its top, so it
    moves far less than Rank-1 between attackers trained alike."""
    return float(identification_aps(features, pids, camids).mean())


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
    """Rank-1, mAP and TAR@FAR (percent) of an attacker's features for `faces` (pid, camid)."""
    pids, camids = faces.pid.to_numpy(), faces.camid.to_numpy()
    tar = verification_tar(features, pids, fars)
    return {"rank1": identification_rank1(features, pids, camids), "map": identification_map(features, pids, camids),
            **{f"tar_far{far:g}": v for far, v in tar.items()}}


def chance_scores(faces: pd.DataFrame, fars: Sequence[float] = (1e-2, 1e-3)) -> dict:
    """What an attacker who sees identical features for every face scores on `faces` (the floor)."""
    return attack_scores(np.zeros((len(faces), 1), np.float32), faces, fars)

