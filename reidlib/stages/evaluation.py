"""Protocol evaluation (paper Section IV-B): mAP and Rank-1 under the paper's three protocols.

orig_orig: trained and tested on original; orig_anon: trained on original, tested on the
anonymized copy; anon_anon: trained and tested on the anonymized copy.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..core.config import EvaluationConfig
from ..models import torchreid_models as trm
from ..models.folding import folded
from ..models.transforms import ReidImages, test_transform
from ..models.zoo import display_name, load_trained

PROTOCOLS = {"orig_orig": ("orig", "orig"), "orig_anon": ("orig", "anon"), "anon_anon": ("anon", "anon")}
RESULT_COLUMNS = ["dataset", "model", "protocol", "train_variant", "test_variant", "technique", "distance", "mAP",
                  "rank1", "rank5", "mINP", "own_camera_top10", "own_camera_base"]
QUERY_AP_COLUMNS = ["protocol", "image", "ap"]  # each query's AP (percent) under a protocol, beside the results


@dataclass(frozen=True)
class RankResult:
    """CMC (ranks 1..len(cmc)), mAP and mINP as fractions, over the queries with a valid match."""

    cmc: np.ndarray
    mAP: float
    mINP: float
    valid_queries: int


def _rank_kernel():
    """The compiled per-query kernel of `rank_metrics` (numba), or None where numba is absent."""
    try:
        import numba
    except ImportError:
        return None

    @numba.njit(parallel=True, cache=True)
    def kernel(dist, q_pids, g_pids, q_cams, g_cams, max_rank):
        nq, ng = dist.shape
        hits = np.zeros((nq, max_rank), np.int64)
        ap = np.zeros(nq)
        inp = np.zeros(nq)
        valid = np.zeros(nq, np.bool_)
        for i in numba.prange(nq):
            # the true matches' distances, sorted (a handful per query)
            k = 0
            for g in range(ng):
                if g_pids[g] == q_pids[i] and g_cams[g] != q_cams[i]:
                    k += 1
            if k == 0:
                continue
            rel = np.empty(k, dist.dtype)
            k = 0
            for g in range(ng):
                if g_pids[g] == q_pids[i] and g_cams[g] != q_cams[i]:
                    rel[k] = dist[i, g]
                    k += 1
            rel.sort()
            # each kept gallery image lands in the slot of the true matches at or below its distance
            counts = np.zeros(k + 1, np.int64)
            for g in range(ng):
                if g_pids[g] == q_pids[i] and g_cams[g] == q_cams[i]:
                    continue  # same id, same camera: not part of the ranking
                counts[np.searchsorted(rel, dist[i, g], side="right")] += 1
            pos = 1
            s = 0.0
            for j in range(k):
                pos += counts[j]  # rank (1-based) of the j-th true match among kept images
                s += (j + 1) / pos
                if j == 0 and pos <= max_rank:
                    for r in range(pos - 1, max_rank):
                        hits[i, r] = 1
            ap[i] = s / k
            inp[i] = k / pos
            valid[i] = True
        return hits, ap, inp, valid

    return kernel


_KERNEL: list = []


def rank_metrics_compiled(distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50) -> RankResult | None:
    """`rank_metrics` as one compiled pass per query (numba, torch's thread count), or None without numba.

    Same definition and result as the torch version below; written as a loop because counting
    each gallery image into its true-match slot is one branchy pass that vectorised code runs
    several times over.
    """
    if not _KERNEL:
        _KERNEL.append(_rank_kernel())
    if _KERNEL[0] is None:
        return None
    import numba

    # as many threads as torch has: numba's OpenMP layer shares torch's libgomp, and at its default (every core)
    # it would raise the thread count of a one-thread job's later torch work too (oversubscribed, spinning)
    threads = torch.get_num_threads()
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    dist = np.ascontiguousarray(distmat)
    max_rank = min(max_rank, dist.shape[1])
    try:
        hits, ap, inp, valid = _KERNEL[0](dist, np.asarray(q_pids, np.int64), np.asarray(g_pids, np.int64),
                                          np.asarray(q_camids, np.int64), np.asarray(g_camids, np.int64), max_rank)
    finally:
        if torch.get_num_threads() != threads:  # (the layer's start set OpenMP's count for the whole process)
            torch.set_num_threads(threads)
    n = int(valid.sum())
    if n == 0:
        raise ValueError("no query has a valid match in the gallery (same id in another camera)")
    return RankResult(cmc=hits[valid].sum(0) / n, mAP=float(ap[valid].sum() / n), mINP=float(inp[valid].sum() / n),
                      valid_queries=n)


def rank_metrics(distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50,
                 backend: str = "auto", device: str | torch.device = "cpu") -> RankResult:
    """CMC, mAP and mINP with Market-1501's rule (gallery images of the query's id and camera ignored).

    `backend`: "numba" (compiled, `rank_metrics_compiled`), "torch" (vectorised, `rank_metrics_torch`,
    on `device`) or "auto" (torch on a CUDA `device`, else numba when installed). All give the same numbers.
    """
    if backend not in ("auto", "numba", "torch"):
        raise ValueError(f"unknown rank_metrics backend '{backend}'; choose auto, numba or torch")
    on_gpu = torch.device(device).type != "cpu"
    if backend == "numba" or (backend == "auto" and not on_gpu):
        result = rank_metrics_compiled(distmat, q_pids, g_pids, q_camids, g_camids, max_rank)
        if result is not None:
            return result
        if backend == "numba":
            raise ImportError("rank_metrics backend 'numba' needs the numba package")
    return rank_metrics_torch(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, device=device)


@torch.no_grad()
def rank_metrics_torch(distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50,
                       chunk: int = 256, device: str | torch.device = "cpu") -> RankResult:
    """CMC, mAP and mINP with Market-1501's rule: gallery images of the query's id and camera are ignored.

    Written here because torchreid's evaluator sorts every gallery row (its compiled version is
    not on PyPI): this one never sorts the gallery. For each query, the distances of its true
    matches are sorted (a handful), every gallery distance is placed among them with
    `searchsorted`, and counting per interval gives each true match's rank among the kept images.
    Queries without a valid match are skipped, as torchreid does; ties are broken arbitrarily.
    Runs on `device` (the same code on CPU and CUDA; sums in float64).
    """
    dev = torch.device(device)
    dist = torch.as_tensor(np.asarray(distmat)).to(dev)
    q_pids, g_pids = torch.as_tensor(np.array(q_pids), device=dev), torch.as_tensor(np.array(g_pids), device=dev)
    q_cams, g_cams = torch.as_tensor(np.array(q_camids), device=dev), torch.as_tensor(np.array(g_camids), device=dev)
    max_rank = min(max_rank, dist.shape[1])
    hits = torch.zeros(max_rank, dtype=torch.float64, device=dev)
    ranks = torch.arange(1, max_rank + 1, dtype=torch.float64, device=dev)
    ap_sum = torch.zeros((), dtype=torch.float64, device=dev)
    inp_sum = torch.zeros((), dtype=torch.float64, device=dev)
    valid = 0
    inf = torch.tensor(float("inf"), dtype=dist.dtype, device=dev)
    for s in range(0, dist.shape[0], chunk):
        d = dist[s:s + chunk]
        same = g_pids[None, :] == q_pids[s:s + chunk, None]
        junk = same & (g_cams[None, :] == q_cams[s:s + chunk, None])
        rel = same & ~junk
        n_rel = rel.sum(1)
        keep_q = n_rel > 0
        if not bool(keep_q.any()):
            continue
        d, rel, junk, n_rel = d[keep_q], rel[keep_q], junk[keep_q], n_rel[keep_q]
        k = int(n_rel.max())
        rel_d = torch.topk(torch.where(rel, d, inf), k, dim=1, largest=False, sorted=True).values.contiguous()
        # slot j of a gallery image = number of true-match distances <= its distance
        slot = torch.searchsorted(rel_d, d.contiguous(), right=True)
        counts = torch.zeros(d.shape[0], k + 1, dtype=torch.float64, device=dev).scatter_add_(
            1, slot, (~junk).to(torch.float64))
        pos = counts.cumsum(1)[:, :k] + 1  # rank (1-based, among kept images) of each true match
        order = torch.arange(1, k + 1, dtype=torch.float64, device=dev)[None, :]
        mask = order <= n_rel[:, None]
        ap_sum += ((order / pos) * mask).sum(1).div(n_rel).sum()
        last = pos.gather(1, (n_rel - 1)[:, None]).squeeze(1)
        inp_sum += (n_rel / last).sum()
        hits += (pos[:, :1] <= ranks[None, :]).sum(0)
        valid += int(d.shape[0])
    if valid == 0:
        raise ValueError("no query has a valid match in the gallery (same id in another camera)")
    return RankResult(cmc=(hits / valid).cpu().numpy(), mAP=float(ap_sum) / valid, mINP=float(inp_sum) / valid,
                      valid_queries=valid)


def single_shot_cmc(distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50, repeats: int = 10,
                    seed: int = 0) -> np.ndarray:
    """CUHK03's single-gallery-shot CMC: per query, one random kept image per gallery identity, `repeats` draws.

    The classic CUHK03 protocol's metric (torchreid's `eval_cuhk03`; its code no longer runs on
    numpy 2, which removed `np.bool`). Same-id same-camera images are removed first; queries without
    a valid match are skipped. The draw uses a seeded generator, so the curve is reproducible.
    """
    dist = np.asarray(distmat)
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
    order = np.argsort(g_pids, kind="stable")  # gallery grouped by identity
    sorted_pids = g_pids[order]
    starts = np.flatnonzero(np.r_[True, sorted_pids[1:] != sorted_pids[:-1]])
    group_pid = sorted_pids[starts]
    rng = np.random.default_rng(seed)
    max_rank = min(max_rank, len(group_pid))
    hits, valid = np.zeros(max_rank, dtype=np.int64), 0
    for i in range(len(dist)):
        junk = (sorted_pids == q_pids[i]) & (g_camids[order] == q_camids[i])
        true = (group_pid == q_pids[i])
        if not ((sorted_pids == q_pids[i]) & ~junk).any():
            continue
        valid += 1
        d = dist[i][order]
        for _ in range(repeats):
            u = rng.random(len(d))
            u[junk] = -1.0  # removed images are never drawn
            best = np.maximum.reduceat(u, starts)  # the drawn key of each identity
            drawn = np.full(len(d), False)
            drawn[u == np.repeat(best, np.diff(np.r_[starts, len(d)]))] = True
            drawn &= u >= 0
            pick = np.full(len(group_pid), np.nan)
            idx = np.flatnonzero(drawn)
            pick[np.searchsorted(starts, idx, side="right") - 1] = d[idx]
            target = pick[true][0]
            rank = 1 + int(np.sum(pick[~true] < target))  # identities with no kept image (nan) never count
            if rank <= max_rank:
                hits[rank - 1:] += 1
    if valid == 0:
        raise ValueError("no query has a valid match in the gallery (same id in another camera)")
    return hits / (valid * repeats)


@torch.no_grad()
def extract(model: torch.nn.Module, root: str | Path, records: pd.DataFrame, size: tuple[int, int],
            batch_size: int = 64, flip: bool = False) -> torch.Tensor:
    """Features of `records` (model in eval mode), as a CPU float tensor; `flip` averages in the mirror image."""
    device = next(model.parameters()).device
    loader = DataLoader(ReidImages(root, records, test_transform(size)), batch_size=batch_size)
    net = None
    feats = []
    for x, _ in loader:
        x = x.to(device)
        if net is None:
            net = folded(model, x[:2])  # batch norm folded in: the same features, faster
        f = net(x).float()
        if flip:
            f = (f + net(torch.flip(x, dims=[3])).float()) / 2
        feats.append(f.cpu())
    return torch.cat(feats)


def distances(model: torch.nn.Module, size: tuple[int, int], root: str | Path, records: pd.DataFrame,
              section: EvaluationConfig = EvaluationConfig(), rerank: bool = False) -> np.ndarray:
    """Query x gallery distances of a model on one dataset copy: `section.metric` between features, or, with
    `rerank`, BoT's test (paper Section IV-A): L2-normalised features (Euclidean then orders as cosine does)
    and k-reciprocal re-ranking with `section.k1`, `k2`, `lambda_value`."""
    q = records[records.split == "query"]
    g = records[records.split == "gallery"]
    device = next(model.parameters()).device  # re-ranking runs where the model does
    e = section
    qf, gf = extract(model, root, q, size, e.batch_size, e.flip), extract(model, root, g, size, e.batch_size, e.flip)
    return feature_distances(qf, gf, e, rerank, device)


def feature_distances(qf: torch.Tensor, gf: torch.Tensor, section: EvaluationConfig = EvaluationConfig(),
                      rerank: bool = False, device: str | torch.device = "cpu") -> np.ndarray:
    """Query x gallery distances between features, as stage 5 computes them (`distances`)."""
    e = section
    if rerank:
        feats = torch.nn.functional.normalize(torch.cat([qf, gf]), dim=1)
        return re_ranking(feats, len(qf), min(e.k1, len(feats) - 1), min(e.k2, len(feats)), e.lambda_value,
                          device=device)
    return trm.distance_matrix(qf, gf, e.metric)


def query_ids(records: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(query pids, gallery pids, query cameras, gallery cameras) of a records table."""
    q, g = records[records.split == "query"], records[records.split == "gallery"]
    return q.pid.to_numpy(), g.pid.to_numpy(), q.camid.to_numpy(), g.camid.to_numpy()


def per_query_ap(distmat, q_pids, g_pids, q_camids, g_camids) -> np.ndarray:
    """Average precision (a fraction) of every query, NaN where it has no valid match.

    Each query's AP is `rank_metrics` on that query's row alone (its mAP over one query is that query's AP),
    so the per-query numbers average to exactly the protocol's mAP.
    """
    dist = np.asarray(distmat)
    q_pids, q_camids = np.asarray(q_pids), np.asarray(q_camids)
    out = np.full(len(dist), np.nan)
    for i in range(len(dist)):
        try:
            out[i] = rank_metrics(dist[i:i + 1], q_pids[i:i + 1], g_pids, q_camids[i:i + 1], g_camids).mAP
        except ValueError:  # no true match in another camera: not part of the mAP
            continue
    return out


def evaluate_model(model: torch.nn.Module, size: tuple[int, int], root: str | Path, records: pd.DataFrame,
                   section: EvaluationConfig = EvaluationConfig(), rerank: bool = False,
                   per_query: bool = False) -> dict:
    """mAP, Rank-1, Rank-5 and mINP (percent) of a model on the query/gallery split of one dataset copy
    (`distances`); `section.single_gallery_shot` takes Rank-k from CUHK03's classic CMC (mAP is unchanged).
    With `per_query`, also `query_ap`: each query's AP in percent (`per_query_ap`, NaN without a valid match)."""
    device = next(model.parameters()).device  # rank metrics run where the model does
    dist = distances(model, size, root, records, section, rerank)
    ids = query_ids(records)
    r = rank_metrics(dist, *ids, device=device)
    cmc = single_shot_cmc(dist, *ids) if section.single_gallery_shot else r.cmc
    own, base = own_camera_share(dist, ids[2], ids[3])
    out = {"mAP": 100 * r.mAP, "rank1": 100 * float(cmc[0]),
           "rank5": 100 * float(cmc[min(4, len(cmc) - 1)]), "mINP": 100 * r.mINP,
           "own_camera_top10": own, "own_camera_base": base}
    if per_query:
        out["query_ap"] = 100 * per_query_ap(torch.as_tensor(dist).float().cpu().numpy(), *ids)
    return out


def own_camera_share(dist, q_camids: np.ndarray, g_camids: np.ndarray, k: int = 10) -> tuple[float, float]:
    """Percent of each query's k nearest gallery images taken in the query's own camera, and the percent
    a ranking blind to cameras would give (the gallery's share of that camera), both averaged over queries.

    A model that has learned background and lighting rather than people ranks its own camera first; under
    the Market-1501 rule the true matches are all in other cameras, so such a model scores below random.
    """
    d = torch.as_tensor(dist).float().cpu().numpy()
    g_camids, q_camids = np.asarray(g_camids), np.asarray(q_camids)
    k = min(k, d.shape[1])
    own = base = 0.0
    for s in range(0, len(d), 256):  # no row is sorted (rank_metrics avoids it too): one partition per row
        rows, cams = d[s:s + 256], q_camids[s:s + 256, None]
        kth = np.partition(rows, k - 1, axis=1)[:, k - 1:k]
        below = rows < kth
        tied = rows == kth  # the k nearest: all below the k-th distance, then ties in gallery order
        top = below | (tied & (np.cumsum(tied, axis=1) <= k - below.sum(1, keepdims=True)))
        same = g_camids[None, :] == cams
        own += float((top & same).sum()) / k
        base += float(same.mean(1).sum())
    return 100 * own / len(d), 100 * base / len(d)


def evaluate_protocols(model_dirs: dict[str, Path], roots: dict[str, Path], records: pd.DataFrame,
                       section: EvaluationConfig, labels: dict[str, str], device: str = "cpu", rerank: bool = False,
                       protocols: Sequence[str] = tuple(PROTOCOLS), queries: list | None = None) -> pd.DataFrame:
    """One row per protocol (of `protocols`); `model_dirs` and `roots` are keyed by variant ('orig', 'anon').

    `labels` are recorded on every row: the `dataset`, and the `technique` that made the 'anon' variant (so
    results of several techniques stack into one table, as in the paper's Table VIII). A `queries` list
    receives each query's AP under each protocol (a `QUERY_AP_COLUMNS` table), from the same distances.
    """
    rows, cache = [], {}
    q_images = records.image[records.split == "query"].to_numpy()
    for protocol, (train_v, test_v) in PROTOCOLS.items():
        if protocol not in protocols:
            continue
        if train_v not in cache:
            cache[train_v] = load_trained(model_dirs[train_v], device)
        model, size = cache[train_v]
        arch = json.loads((Path(model_dirs[train_v]) / "pids.json").read_text())["model"]
        res = evaluate_model(model, size, roots[test_v], records, section, rerank, per_query=queries is not None)
        if queries is not None:
            queries.append(pd.DataFrame({"protocol": protocol, "image": q_images,
                                         "ap": res.pop("query_ap")}, columns=QUERY_AP_COLUMNS))
        rows.append(dict(dataset=labels["dataset"], model=display_name(arch), protocol=protocol, train_variant=train_v,
                         test_variant=test_v, technique=labels["technique"],
                         distance="cosine+rerank" if rerank else section.metric, **res))
    out = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    cols = ["mAP", "rank1", "rank5", "mINP", "own_camera_top10", "own_camera_base"]
    out[cols] = out[cols].astype(float).round(4)
    return out


def random_ranking_map(records: pd.DataFrame, seed: int = 0, draws: int = 20) -> float:
    """Expected mAP (percent) of a random ranking on this split: the chance floor for the plots."""
    rng = np.random.default_rng(seed)
    q = records[records.split == "query"]
    g = records[records.split == "gallery"]
    vals = []
    for _ in range(draws):
        dist = rng.random((len(q), len(g)))
        vals.append(rank_metrics(dist, q.pid.to_numpy(), g.pid.to_numpy(), q.camid.to_numpy(),
                                 g.camid.to_numpy()).mAP)
    return 100 * float(np.mean(vals))


@torch.no_grad()
def squared_distances(features: torch.Tensor, rows: slice) -> torch.Tensor:
    """float32 squared Euclidean distances of `features[rows]` to every row of `features`."""
    f = features
    sq = (f * f).sum(1)
    d = sq[rows, None] + sq[None, :] - 2.0 * (f[rows] @ f.T)
    return d.clamp_min_(0)


def _reciprocal(neighbors: np.ndarray, k: int) -> list[np.ndarray]:
    """For each row i, the neighbours j among its first k+1 whose own first k+1 contain i (in order)."""
    first = neighbors[:, :k + 1]
    back = first[first]  # (n, k+1, k+1): each neighbour's own neighbours
    mask = (back == np.arange(len(first))[:, None, None]).any(2)
    return [row[m] for row, m in zip(first, mask)]


def _jaccard_rows(v: sp.csr_matrix, csc: sp.csc_matrix, rows: slice, num_query: int,
                  dev: torch.device) -> torch.Tensor:
    """sum_k min(V[i, k], V[j, k]) for query rows i in `rows` and every gallery row j, in float64 on `dev`."""
    n = v.shape[0]
    part = v[rows].tocoo()
    m = part.shape[0]
    indptr = torch.as_tensor(csc.indptr, device=dev)
    col = torch.as_tensor(part.col.astype(np.int64), device=dev)
    start, lengths = indptr[col], indptr[col + 1] - indptr[col]
    total = int(lengths.sum())
    # every stored entry (r, k) of the query rows meets every stored entry (j, k) of column k
    first = torch.cumsum(lengths, 0) - lengths
    take = torch.repeat_interleave(start - first, lengths) + torch.arange(total, device=dev)
    other = torch.as_tensor(csc.indices.astype(np.int64), device=dev)[take]
    mins = torch.minimum(torch.repeat_interleave(torch.as_tensor(part.data, device=dev), lengths),
                         torch.as_tensor(csc.data, device=dev)[take]).double()
    keep = other >= num_query
    key = torch.repeat_interleave(torch.as_tensor(part.row.astype(np.int64), device=dev), lengths)[keep] \
        * (n - num_query) + (other[keep] - num_query)
    temp = torch.zeros(m * (n - num_query), dtype=torch.float64, device=dev).index_add_(0, key, mins[keep])
    return temp.view(m, n - num_query)


@torch.no_grad()
def _neighbours(fd: torch.Tensor, num_query: int, kk: int, chunk: int, progress: bool
                ) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """Re-ranking, phase 1: every image's `kk` nearest neighbours under row-normalised squared distances,
    the row maxima, and the query rows' normalised distances to the gallery (on `fd`'s device)."""
    n = fd.shape[0]
    neighbors = np.empty((n, kk), dtype=np.int64)
    rowmax = np.empty(n, dtype=np.float32)
    original_q = torch.empty((num_query, n - num_query), dtype=torch.float32, device=fd.device)
    for s in tqdm(range(0, n, chunk), desc="re-ranking: neighbours", disable=not progress):
        d = squared_distances(fd, slice(s, s + chunk))
        m = d.max(1).values
        rowmax[s:s + len(d)] = m.cpu().numpy()
        o = d / m[:, None]
        neighbors[s:s + len(d)] = torch.topk(o, kk, dim=1, largest=False, sorted=True).indices.cpu().numpy()
        q_end = min(s + len(d), num_query)
        if s < q_end:
            original_q[s:q_end] = o[:q_end - s, num_query:]
    return neighbors, rowmax, original_q


def _reciprocal_vectors(f: torch.Tensor, neighbors: np.ndarray, rowmax: np.ndarray, k1: int, k2: int,
                        progress: bool) -> sp.csr_matrix:
    """Re-ranking, phase 2: each image's expanded k-reciprocal set weighted by exp(-distance), averaged
    over its k2 nearest neighbours (query expansion); sparse rows summing to one."""
    n = f.shape[0]
    recip = _reciprocal(neighbors, k1)
    recip_half = _reciprocal(neighbors, int(np.around(k1 / 2.0)))
    sq = (f * f).sum(1)
    rows, cols, vals = [], [], []
    for i in tqdm(range(n), desc="re-ranking: k-reciprocal sets", disable=not progress):
        base = set(recip[i].tolist())
        expansion = set(base)
        for c in recip[i]:
            cand = recip_half[c]
            if len(base.intersection(cand.tolist())) > 2.0 / 3 * len(cand):
                expansion.update(cand.tolist())
        idx = np.fromiter(sorted(expansion), dtype=np.int64)
        d = (sq[i] + sq[idx] - 2.0 * (f[idx] @ f[i])).clamp_min(0).numpy().astype(np.float32) / rowmax[i]
        w = np.exp(-d)
        rows.append(np.full(len(idx), i))
        cols.append(idx)
        vals.append(w / w.sum())
    v = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n),
                      dtype=np.float32)
    if k2 != 1:  # query expansion: average of the k2 nearest neighbours' vectors
        qe = sp.csr_matrix((np.full(n * k2, 1.0 / k2, dtype=np.float32),
                            (np.repeat(np.arange(n), k2), neighbors[:, :k2].ravel())), shape=(n, n))
        v = (qe @ v).tocsr()
    v.eliminate_zeros()
    return v


def re_ranking(features, num_query: int, k1: int = 20, k2: int = 6, lambda_value: float = 0.3,
               chunk: int = 1024, progress: bool = False, device: str | torch.device = "cpu") -> np.ndarray:
    """k-reciprocal re-ranking (Zhong et al., CVPR 2017) as BoT tests with it (paper Section IV-A).

    `features`: query rows first, then gallery rows. Returns the (num_query, num_gallery) re-ranked
    distances. Written here because torchreid's `re_ranking` holds several dense N x N matrices
    (far beyond 24 GB at Market size); this one keeps only the k1+1 nearest neighbours of every
    image, the sparse k-reciprocal vectors and the query rows, computing distances in chunks.
    Same definition as torchreid's: squared Euclidean distances, each row divided by its maximum.
    On a CUDA `device` the distances, neighbours and Jaccard distances run there (the same code on CPU);
    the k-reciprocal sets are built on the CPU either way.
    """
    dev = torch.device(device)
    f = torch.as_tensor(np.asarray(features), dtype=torch.float32)
    n = f.shape[0]
    neighbors, rowmax, original_q = _neighbours(f.to(dev), num_query, min(k1 + 1, n), chunk, progress)
    v = _reciprocal_vectors(f, neighbors, rowmax, k1, k2, progress)
    csc = v.tocsc()  # phase 3: Jaccard distances of the query rows, blended with the original distances
    out = np.empty((num_query, n - num_query), dtype=np.float32)
    step = 64 if dev.type == "cpu" else 1024
    for s in tqdm(range(0, num_query, step), desc="re-ranking: Jaccard", disable=not progress):
        e = min(s + step, num_query)
        temp = _jaccard_rows(v, csc, slice(s, e), num_query, dev)
        jaccard = 1 - temp / (2.0 - temp)
        out[s:e] = (jaccard * (1 - lambda_value) + original_q[s:e].double() * lambda_value).float().cpu().numpy()
    return out
