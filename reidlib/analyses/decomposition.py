"""The orig->anon drop taken apart (beyond the paper's Section IV-B): what re-encoding, boxes and the face each cost.

The paper's protocol tests a model trained on the originals on an anonymized copy. As anonymization tools
write such a copy (the whole image decoded, anonymized and encoded again) the drop mixes three things:
the JPEG re-encoding of every pixel, the detector's boxes (a missed face stays, a false box blurs a patch)
and the face itself. Here each orig-trained model (every seed) is tested on copies that isolate them:

- `protocol`: the technique on detected boxes, the whole image re-encoded (as tools do; the paper's);
- `reencode`: the null technique, re-encoded: nothing anonymized, only written again;
- `face`: the technique on detected boxes, written exactly (`reidlib.core.jpeg`: only the JPEG blocks
  touching a face change);
- `face_truth`: the same on the ground-truth face boxes (generated worlds only).

The parts (drops in points, before minus after): re-encoding = orig - reencode; face = orig - face; boxes =
(orig - face) - (orig - face_truth), the share of the face part due to the detector's boxes; interaction =
protocol - re-encoding - face, what the two do together beyond their sum. Each part has its seed spread and
a one-sided paired t-test over (model, seed) runs; the face part is what measures the face.
"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pandas as pd

from ..core.config import Config
from ..core.runfiles import (
    decomposition_dir,
    decomposition_scores_path,
    decomposition_summary_path,
    file_sha256,
    finished,
    make_meta,
    meta_path,
    output_folder,
    tree_digest,
    write_csv,
)
from ..models.zoo import load_trained
from ..pipeline import rundir, table
from ..stages import anonymize, evaluation, statistics

COPIES = ("protocol", "reencode", "face", "face_truth")  # the test copies, beside the originals
PARTS = {"re-encoding": ("orig", "reencode"), "face": ("orig", "face"), "boxes": ("face_truth", "face"),
         "protocol": ("orig", "protocol")}  # part -> (before, after): drop = before - after
PART_ORDER = ("protocol", "re-encoding", "face", "boxes", "interaction")


def writers(cfg: Config) -> dict[str, anonymize.Writer]:
    """How each test copy is written: the run's technique and parameters, encoded one way or the other."""
    w = rundir.writer(cfg)
    return {"protocol": replace(w, encode="reencode"), "reencode": replace(w, technique="none", params={},
                                                                           encode="reencode"),
            "face": replace(w, encode="exact"), "face_truth": replace(w, encode="exact")}


def _copy(cfg: Config, name: str, out: Path, progress: bool) -> Path:
    """One test copy (the query and gallery images only: a model trained on the originals is tested on it)."""
    if (out / "manifest.json").is_file():
        return out
    recs = rundir.records(cfg)
    test = list(recs.image[recs.split != "train"])
    boxes = rundir.ground_truth(cfg) if name == "face_truth" else rundir.load_detections(cfg)
    anonymize.anonymize_dataset(rundir.stage_generate(cfg), boxes, out, writers(cfg)[name], images=test,
                                progress=progress, processes=cfg.anonymization.processes)
    return out


def own_copy(cfg: Config) -> str:
    """The test copy that stage 3's anonymized copy already is (the same writer on the same boxes, so the same
    bytes): its scores are stage 5's orig_anon, neither written nor tested again."""
    return "face" if cfg.anonymization.encode == "exact" else "protocol"


def scores(cfg: Config, progress: bool = False) -> pd.DataFrame:
    """mAP and Rank-1 of every orig-trained model (every seed) on the originals and on each test copy."""
    own = own_copy(cfg)
    copies = {n: _copy(cfg, n, decomposition_dir(cfg) / "copies" / n, progress) for n in available(cfg) if n != own}
    recs = rundir.records(cfg)
    test = recs[recs.split != "train"]
    e = cfg.evaluation
    rows = []
    for model, seed in table.model_seeds(cfg):
        base = pd.read_csv(rundir.stage_evaluate_model(cfg, model, progress, seed)).set_index("protocol")
        name = base.model.iloc[0]
        for copy, protocol in (("orig", "orig_orig"), (own, "orig_anon")):
            rows.append({"model": name, "seed": seed, "copy": copy, "mAP": base.mAP[protocol],
                         "rank1": base.rank1[protocol]})
        net, size = load_trained(rundir.stage_train(cfg, "orig", model, progress, seed), "cpu")
        for copy, root in copies.items():
            r = evaluation.evaluate_model(net, size, root, test, e, model in e.rerank_models)
            rows.append({"model": name, "seed": seed, "copy": copy, "mAP": round(r["mAP"], 4), "rank1": round(r["rank1"], 4)})
    return pd.DataFrame(rows)


def available(cfg: Config) -> tuple[str, ...]:
    """The copies this run can make: `face_truth` only where the dataset has ground-truth faces."""
    return tuple(c for c in COPIES if c != "face_truth" or rundir.ground_truth(cfg) is not None)


def drops(s: pd.DataFrame) -> pd.DataFrame:
    """Each part's drop per (model, seed) and metric: a row per part (interaction = protocol - re-encoding - face)."""
    rows = []
    for metric in statistics.METRICS:
        wide = s.pivot_table(index=["model", "seed"], columns="copy", values=metric)
        got = {}
        for part, (before, after) in PARTS.items():
            if before in wide and after in wide:
                got[part] = wide[before] - wide[after]
        if {"protocol", "re-encoding", "face"} <= set(got):
            got["interaction"] = got["protocol"] - got["re-encoding"] - got["face"]
        for part in PART_ORDER:
            if part in got:
                rows += [{"part": part, "metric": metric, "model": m, "seed": sd, "drop": float(v)} for (m, sd), v in got[part].items()]
    return pd.DataFrame(rows)


def summary(d: pd.DataFrame, alpha: float = 0.05, margins=(1.0,), seed: int = 0) -> pd.DataFrame:
    """Per part and metric: the mean drop over (model, seed) runs, its SD over them (the seed spread), the
    one-sided paired t-test of a drop (> 0), and TOST against the smallest margin (is it equivalent to 0?)."""
    rows = []
    for (part, metric), g in d.groupby(["part", "metric"], sort=False):
        long = pd.concat([g.assign(protocol="before", value=g["drop"]), g.assign(protocol="after", value=0.0)])
        long = long.assign(dataset="run", **{metric: long["value"]})
        t = statistics.paired_test(long, metric, "before", "after", seed, alpha, unit="run")
        eq = statistics.tost(long, metric, "before", "after", float(min(margins)), alpha, unit="run")
        rows.append({"part": part, "metric": metric, "runs": t["n_pairs"], "mean_drop": t["mean_difference"],
                         "drop_sd": t["sd_difference"], "p_value": t["p_value"], "ci_low": t["ci_low"], "ci_high": t["ci_high"],
                         "tost_margin": eq["margin"], "tost_p": eq["p_tost"], "equivalent": eq["equivalent"],
                         "why_not_shown": t["why_not_shown"]})
    return pd.DataFrame(rows)


def stage_decompose(cfg: Config, progress: bool = False) -> Path:
    """The drop taken apart for every orig-trained model and seed of the run: decomposition/scores.csv, and
    summary.csv beside it. Rebuilt when its configuration or the run's models change."""
    out = decomposition_summary_path(cfg)
    results = {f"{m}/{seed}": rundir.stage_evaluate_model(cfg, m, progress, seed)  # the models' results first:
               for m, seed in table.model_seeds(cfg)}  # their bytes are part of the stamp
    conf = table.conf(cfg, "decompose")
    models = tree_digest((k, file_sha256(p)) for k, p in results.items())
    conf["results"] = models
    if finished(meta_path(out), conf, cfg.seed, [out, decomposition_scores_path(cfg)], rebuild_stale=True):
        return out
    with output_folder(decomposition_dir(cfg), conf, cfg.seed):
        got = scores(cfg, progress)
        d = drops(got)
        meta = make_meta("decomposition", conf, cfg.seed, models)
        write_csv(decomposition_scores_path(cfg), got, meta)
        write_csv(decomposition_dir(cfg) / "drops.csv", d, meta)
        write_csv(out, summary(d, cfg.statistics.alpha, cfg.statistics.equivalence_margins, cfg.seed), meta)
    return out


def read_summary(path: Path) -> pd.DataFrame:
    """The summary table `stage_decompose` wrote (an empty reason read as empty, not as NaN)."""
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def load(cfg: Config) -> dict[str, pd.DataFrame]:
    """The decomposition's tables (computed when absent): scores, drops, summary."""
    out = stage_decompose(cfg)
    return {"scores": pd.read_csv(decomposition_scores_path(cfg)), "drops": pd.read_csv(decomposition_dir(cfg) / "drops.csv"),
            "summary": read_summary(out)}



def face_verdict(summary_table: pd.DataFrame, metric: str = "mAP", alpha: float = 0.05) -> dict:
    """What the face part of the drop says: "drop" (greater than 0 at `alpha`, the 95% interval above 0),
    "equivalent" (TOST: within ±margin of 0), "inconclusive" (neither), or "not tested" (why_not_shown);
    with the face part's share of the protocol's drop and the re-encoding part's."""
    rows = summary_table[summary_table.metric == metric].set_index("part")
    if "face" not in rows.index:
        return {"verdict": "not tested", "why": "no face part in this run", "metric": metric}
    face = rows.loc["face"]
    protocol = rows.loc["protocol"].mean_drop if "protocol" in rows.index else float("nan")
    reenc = rows.loc["re-encoding"].mean_drop if "re-encoding" in rows.index else float("nan")
    if isinstance(face.why_not_shown, str) and face.why_not_shown:
        verdict = "not tested"
    elif face.p_value < alpha and face.ci_low > 0:
        verdict = "drop"
    elif bool(face.equivalent):
        verdict = "equivalent"
    else:
        verdict = "inconclusive"

    def share(part: float) -> float:  # a part as a fraction of the protocol's drop (NaN when that is ~0)
        return part / protocol if math.isfinite(protocol) and abs(protocol) > 1e-9 else float("nan")

    return {"verdict": verdict, "metric": metric, "face": float(face.mean_drop), "face_sd": float(face.drop_sd),
                "face_low": float(face.ci_low), "face_high": float(face.ci_high), "p_value": float(face.p_value),
                "margin": float(face.tost_margin), "runs": int(face.runs), "protocol": float(protocol),
                "reencoding": float(reenc), "face_share": share(float(face.mean_drop)), "reencoding_share": share(float(reenc)),
                "why": face.why_not_shown if isinstance(face.why_not_shown, str) else ""}
