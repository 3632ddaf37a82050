"""What chapter 8 shows (beyond the paper, whose Section IV measures faces only through mAP after anonymization;
Table VIII beside the run's techniques): face share ratios per model and in the controls, face-only
interventions, and ranked lists with saliency."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..analyses import attribution
from ..analyses import controls as measures  # `controls` here is the face share ratios at the controls
from ..book import tables

TRAINED = {"orig": "trained on original images", "anon": "trained on anonymized images"}
PLACE = {"query": "query only", "gallery": "gallery only", "both": "query and gallery"}
KINDS = {"true match": "true matches", "hardest false match": "hardest false matches"}  # plural, as a list reads
PAPER_COLUMN = "paper, BoT on Market-1501 (Table VIII)"
TABLE_INDEX = "technique (trained on original, tested with faces anonymized)"


def names(values: pd.Series) -> str:
    """'HACNN, BoT': the distinct values in their order of appearance."""
    return ", ".join(str(v) for v in dict.fromkeys(values))


def method_list(main: pd.DataFrame) -> str:
    """'HACNN: grad-cam; BoT: decomposition': how each model's face share is measured."""
    return "; ".join(f"{m}: {g.method.iloc[0]}" for m, g in main.groupby("model", sort=False))


def interval(r) -> str:
    """'1.12 [0.95, 1.30]': a face share ratio (a row of `face_share_summary`) with its interval."""
    return f"{r.ratio:.2f} [{r.ratio_low:.2f}, {r.ratio_high:.2f}]"


def share_plot(data: pd.DataFrame, ax, x: str = "trained", hue: str = "kind") -> None:
    """Mean face share ratio with its bootstrap interval, one group of dots per `x`, one colour per `hue`."""
    xs = list(dict.fromkeys(data[x]))
    hues = list(dict.fromkeys(data[hue]))
    width = 0.8 / max(len(hues), 1)
    for k, h in enumerate(hues):
        d = data[data[hue] == h].set_index(x).reindex(xs)
        pos = np.arange(len(xs)) + (k - (len(hues) - 1) / 2) * width
        ax.errorbar(pos, d.ratio, yerr=[d.ratio - d.ratio_low, d.ratio_high - d.ratio], fmt="o", capsize=4,
                    label=str(h))
    ax.axhline(1, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(xs)), xs)
    ax.set_ylabel("face share ratio")
    ax.legend(fontsize=8)


def share_figure(main: pd.DataFrame):
    """The face share ratio of every model of the run (true and hardest false matches), trained on original and on
    anonymized images, one panel per model."""
    data = main.assign(trained=main.trained_on.map(TRAINED))
    models = list(dict.fromkeys(data.model))
    fig, axes = plt.subplots(1, len(models), figsize=(4.6 * len(models), 3.4), squeeze=False)
    for ax, m in zip(axes[0], models):
        d = data[data.model == m]
        share_plot(d, ax)
        ax.set_title(f"{m} ({d.method.iloc[0]})")
    fig.tight_layout()
    return fig


def share_list(main: pd.DataFrame) -> str:
    """One Markdown item per row: model, training, kind of match, ratio [interval]."""
    return "\n".join(f"- {r.model} ({TRAINED[r.trained_on]}, {KINDS.get(r.kind, r.kind)}): {interval(r)}"
                     for r in main.itertuples())


def controls(share: pd.DataFrame) -> pd.DataFrame:
    """The controls' rows of `face_share_summary` (models trained on original images), each labelled
    'share 0' over 'seed 0' in `control`."""
    ctrl = share[(share.run != "default") & (share.trained_on == "orig")].copy()
    ctrl["control"] = ctrl.run + "\nseed " + ctrl.control_seed.astype(str)  # two short lines: labels never collide
    return ctrl


def controls_figure(share: pd.DataFrame):
    """The face share ratio in each control and seed, one panel per model trained in the controls."""
    ctrl = controls(share)
    models = list(dict.fromkeys(ctrl.model))
    fig, axes = plt.subplots(1, len(models), figsize=(4.6 * len(models), 3.4), squeeze=False)
    for ax, m in zip(axes[0], models):
        d = ctrl[ctrl.model == m]
        share_plot(d, ax, x="control")
        ax.set_title(f"{m} ({d.method.iloc[0]})\ntrained on original images")  # two lines: long names never meet
        ax.set_xlabel("")
    fig.tight_layout()
    return fig


SEPARATION_WORDS = {True: "The ratio rises with the share, and the intervals do not overlap.",
                    False: "The intervals overlap: at this size the measure cannot separate the two controls."}
REVERSED_WORDS = ("The intervals overlap, and the ratio is on average higher where the face carries no identity: the "
                  "measure points the wrong way.")


def control_list(share: pd.DataFrame) -> str:
    """One Markdown item per model: the true matches' ratios [intervals] in the first and the last control (one
    per seed), and whether they separate (`attribution.control_separation`)."""
    tm = controls(share)
    tm = tm[tm.kind == "true match"]
    lines = []
    for v in attribution.control_separation(share).itertuples():
        d = tm[tm.model == v.model]
        low = ", ".join(interval(r) for r in d[d.run == v.low].itertuples())
        high = ", ".join(interval(r) for r in d[d.run == v.high].itertuples())
        words = REVERSED_WORDS if v.reversed and not v.separated else SEPARATION_WORDS[v.separated]
        lines.append(f"- {v.model}: {v.low}: {low}; {v.high}: {high}. {words}")
    return "\n".join(lines)


def visible_share_text(share: pd.DataFrame) -> str:
    """The face share ratio (true matches) of the face-only and face-blind models, per model and method, with the
    verdict of the controls table (`controls.share_control_row`), as a Markdown list."""
    d = share[(share.run == attribution.MODEL_CONTROLS_RUN) & (share.kind == "true match")]
    lines = []
    for (model, method), g in d.groupby(["model", "method"], sort=False):
        g = g.set_index("trained_on")
        if not {"face only", "face blind"} <= set(g.index):
            continue
        row = measures.share_control_row(model, method, g.loc["face only"], g.loc["face blind"])
        lines.append(f"- {model}: face only {interval(g.loc['face only'])}, face blind {interval(g.loc['face blind'])}; "
                     f"{row['verdict']}: {row['why']}")
    return "\n".join(lines) if lines else "The model-level controls are off (teaching.model_controls is empty)."


def face_only_map_text(share: pd.DataFrame) -> str:
    """One sentence: the face-only model's face share ratio on the maps (true matches), per model and method,
    against the bound its controls row asks (`controls.share_control_row`, `controls.FACE_ONLY_RATIO`)."""
    d = share[(share.run == attribution.MODEL_CONTROLS_RUN) & (share.kind == "true match")
              & (share.trained_on == "face only")]
    if d.empty:
        return "The model-level controls are off here (teaching.model_controls is empty)."
    each = "; ".join(f"{r.model} ({r.method}) {interval(r)}" for r in d.itertuples())
    bound = measures.FACE_ONLY_RATIO
    short = int((d.ratio_low <= bound).sum())
    should = "where the map of a model that uses nothing else should lie"
    verdict = (f"none of them lies above {bound:g}, {should}" if short == len(d) else
               f"{short} of {len(d)} {'does' if short == 1 else 'do'} not lie above {bound:g}, {should}" if short
               else f"each lies above {bound:g}, {should}")
    return (f"The face-only model of chapter 7 sees nothing but the face, and its map's face share ratio is: {each}; "
            f"{verdict} (the Findings chapter's controls table).")


def techniques_figure(shown: list[tuple[str, np.ndarray]]):
    """One query's crop as the original and under each technique (`attribution.technique_gallery`), side by side."""
    n = max(len(shown), 1)
    fig, axes = plt.subplots(1, n, figsize=(1.3 * n, 2.6), squeeze=False)
    for ax, (t, im) in zip(axes[0], shown):
        ax.imshow(im)
        ax.set_title(t, fontsize=9)
    for ax in axes[0]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def annotations(values: np.ndarray) -> np.ndarray:
    """Heatmap cell texts that never read '0.00' or '-0.00' for a change that is not zero: two significant
    digits with a sign below 1 ('+0.0031'), one decimal above ('+12.5'), '0' for exactly no change, a dash where
    nothing was measured."""
    def text(v: float) -> str:
        if not np.isfinite(v):
            return "–"
        if v == 0:
            return "0"
        return f"{v:+.1f}" if abs(v) >= 1 else f"{v:+.2g}"
    return np.vectorize(text, otypes=[object])(np.asarray(values, float))


def interventions_figure(inter: pd.DataFrame, models: list[str]):
    """Heatmaps of the mean change of AP (top) and of true-match similarity (bottom) per technique and placement,
    one column per model trained on original images; `inter` is one run's `interventions_summary`."""
    d = inter.assign(where=inter.placement.map(PLACE))
    fig, axes = plt.subplots(2, len(models), figsize=(4.8 * len(models), 6.4), squeeze=False)
    for k, m in enumerate(models):
        for row, (col, label) in enumerate((("ap_change", "AP change (points)"), ("sim_change", "similarity change"))):
            w = d[(d.model == m) & (d.trained_on == "orig")].pivot_table(index="technique", columns="where",
                                                                         values=col, sort=False)
            w = w.reindex(columns=[PLACE[p] for p in attribution.PLACEMENTS])
            lim = np.nanmax(np.abs(w.to_numpy())) or 1.0
            sns.heatmap(w, annot=annotations(w.to_numpy()), fmt="", cmap="RdBu", vmin=-lim, vmax=lim,
                        ax=axes[row, k], cbar=False)
            axes[row, k].set_title(f"{m}: {label}")
            axes[row, k].set_xlabel("face anonymized in")
    fig.tight_layout()
    return fig


def techniques_table(inter: pd.DataFrame, paper: pd.DataFrame):
    """mAP of each model trained on original images with every test face anonymized by one technique, beside the
    paper's Table VIII (its orig→anon column); `inter` is one run's `interventions_summary`."""
    both = inter[(inter.placement == "both") & (inter.trained_on == "orig")]
    table = both.pivot_table(index="technique", columns="model", values="mAP_after", sort=False)
    table.columns = [f"this run, {c}" for c in table.columns]
    viii = paper[paper.protocol == "orig_anon"].set_index("technique").mAP.rename(PAPER_COLUMN)
    table = table.join(viii, how="left").rename_axis("technique").reset_index()
    return tables.shown(table, index="technique", digits=1, headers={"technique": TABLE_INDEX})


def swap_text(changes: dict[str, float], model: str, technique: str) -> str:
    """The sentence comparing the face swap with removing the face (`attribution.swap_and_removal`), or none."""
    if not changes:
        return ""
    return (f"For {model}, the face swap changes AP by {changes['swap']:+.1f} points and anonymizing the face by "
            f"{technique} by {changes['removal']:+.1f} points (mean over queries, faces changed in query and gallery; "
            f"a plus sign: AP rose).")


def _ranked_rows(sub, r: pd.DataFrame, arrays: dict[str, np.ndarray]) -> None:
    """One row of panels per list key: the query, then its ranked gallery images with saliency, framed by match."""
    rows = list(dict.fromkeys(r.key))
    top = int(r["rank"].max())
    axes = sub.subplots(len(rows), top + 1, squeeze=False)
    for i, key in enumerate(rows):
        g = r[r.key == key].sort_values("rank")
        q = g.iloc[0]
        axes[i, 0].imshow(arrays[f"{key}/query"])
        axes[i, 0].set_title(f"{q.case}, {q.view}, AP {100 * q.ap:.0f}", fontsize=6)
        for j, e in enumerate(g.itertuples(), start=1):
            im = arrays[f"{key}/{e.rank - 1}/image"]
            sal = arrays[f"{key}/{e.rank - 1}/saliency"]
            ax = axes[i, j]
            ax.imshow(im)
            ax.imshow(sal, cmap="jet", alpha=0.4, extent=(-0.5, im.shape[1] - 0.5, im.shape[0] - 0.5, -0.5),
                      interpolation="bilinear")
            for s in ax.spines.values():
                s.set_edgecolor("tab:green" if e.correct else "tab:red")
                s.set_linewidth(3)
            ax.set_title(f"{e.similarity:.2f}", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])


def ranked_figure(ranked: pd.DataFrame, arrays: dict[str, np.ndarray], main: pd.DataFrame):
    """The ranked lists (`ranked_lists`) of every model, best, median and worst query, original then anonymized,
    each gallery image with its saliency and a green (true match) or red frame; `main` names each model's method."""
    models = list(dict.fromkeys(ranked.model))
    nrows = [ranked[ranked.model == m].key.nunique() for m in models]
    fig = plt.figure(figsize=(0.95 * (int(ranked["rank"].max()) + 1), 2.0 * sum(nrows) + 0.4 * len(models)),
                     layout="constrained")
    for sub, m in zip(np.atleast_1d(fig.subfigures(len(models), 1, height_ratios=nrows)), models):
        _ranked_rows(sub, ranked[ranked.model == m], arrays)
        sub.suptitle(f"{m} ({main[main.model == m].method.iloc[0]} saliency)", fontsize=10)
    return fig


def summary_list(main: pd.DataFrame, inter: pd.DataFrame, models: list[str]) -> str:
    """The run in three Markdown items: true-match face share ratios trained on original and on anonymized images,
    and each model's AP change per technique with faces anonymized in query and gallery."""
    tm = main[main.kind == "true match"]
    orig, anon = tm[tm.trained_on == "orig"], tm[tm.trained_on == "anon"]
    both = inter[(inter.placement == "both") & (inter.trained_on == "orig")]
    changes = "; ".join(f"{m} {', '.join(f'{r.technique} {r.ap_change:+.1f}' for r in both[both.model == m].itertuples())}"
                        for m in models)
    return "\n".join([
        "- Face share ratio, true matches, trained on original images: "
        + "; ".join(f"{r.model} {interval(r)} ({r.method})" for r in orig.itertuples()),
        "- Trained on anonymized images: " + "; ".join(f"{r.model} {interval(r)}" for r in anon.itertuples()),
        "- AP change with faces anonymized in query and gallery: " + changes])


def sanity_text(share: pd.DataFrame) -> str:
    """The model and data randomization checks of the face share ratio (Adebayo et al. 2018), in words."""
    checks = attribution.sanity_checks(share)
    if checks.empty:
        return "No randomization check was run (the controls are off)."
    parts = []
    for r in checks.itertuples():
        parts.append(f"{r.model}, {r.check}: {r.trained:.2f} [{r.trained_low:.2f}, {r.trained_high:.2f}] trained, "
                     f"{r.randomized:.2f} [{r.randomized_low:.2f}, {r.randomized_high:.2f}] randomized, "
                     + ("changed" if r.changed else "not changed"))
    passed = int(checks.changed.sum())
    verdict = ("so the map reads what the model learned." if passed == len(checks) else
               "a map that does not change when what the model learned is destroyed does not read the model; "
               "where a check fails, that model's face share ratio is not evidence.")
    return (f"At the positive control ({checks.run.iloc[0]}, seed {checks.control_seed.iloc[0]}), true matches: "
            + "; ".join(parts) + f". {passed} of {len(checks)} checks pass: " + verdict)


def alpha_text(alpha: float) -> str:
    """The level of the t-tests over seeds, as the chapter names it."""
    return f"alpha {alpha:g}"


def _lost(r: pd.Series) -> str:
    """A loss over seeds: its mean, and its seed SD where there are two seeds or more."""
    return f"{r.mean_drop:.2f}" + ("" if pd.isna(r.seed_sd) else f" ± {r.seed_sd:.2f}")


def intervention_control_text(means: pd.DataFrame, alpha: float = 0.05) -> str:
    """The face-only intervention (faces anonymized in query and gallery) at both controls, per model and
    technique, with its verdict (`analyses.controls.intervention_judgements`), as a Markdown list; `means` is
    `control_interventions`' file."""
    parts = [f"- {model}, {technique}: {_lost(neg)} AP points lost at share {neg.face_identity_share:g} "
             f"and {_lost(pos)} at share {pos.face_identity_share:g} (mean ± SD over {int(pos.n_seeds)} "
             f"seeds), {verdict}: {why}"
             for model, technique, neg, pos, verdict, why in
             measures.intervention_judgements(attribution.control_interventions(means, alpha))]
    if not parts:
        return "The face-only intervention was not run on the controls (they are off, or only one world is)."
    return "\n".join(parts)


def query_counts(summary: pd.DataFrame) -> str:
    """How many queries the bootstrap intervals rest on: one number, or the range over the summary's rows (a
    query counts for a row only when the images of its pairs show a face)."""
    lo, hi = int(summary.queries.min()), int(summary.queries.max())
    return f"{lo}" if lo == hi else f"{lo} to {hi}"


VISIBLE_WORDS = {"face_only": "face only", "face_blind": "face blind"}
BOX_WORDS = {"detected": "detected boxes", "truth": "true boxes"}


def _removal_means(removal: pd.DataFrame) -> pd.DataFrame:
    """`model_control_removal` averaged over seeds, per world, model, technique and boxes."""
    return (removal.groupby(["visible", "model", "technique", "boxes"], sort=False)[["orig_orig", "after", "floor"]]
            .mean().reset_index())


def removal_table(removal: pd.DataFrame):
    """The face-only and face-blind models' mAP with only the face anonymized (query and gallery), one column per
    technique and boxes, beside their mAP on the originals and the random floor (mean over seeds)."""
    g = _removal_means(removal)
    wide = g.pivot_table(index=["visible", "model"], columns=["technique", "boxes"], values="after", sort=False)
    wide.columns = [f"{t}, {BOX_WORDS[b]}" for t, b in wide.columns]
    base = g.groupby(["visible", "model"], sort=False)[["orig_orig", "floor"]].first()
    out = base[["orig_orig"]].join(wide).join(base[["floor"]]).reset_index()
    out["visible"] = out.visible.map(VISIBLE_WORDS)
    return tables.shown(out, digits=1, headers={"visible": "the model sees", "orig_orig": "originals",
                                                "floor": "random floor"})


def removal_text(removal: pd.DataFrame, technique: str) -> str:
    """Per model, as a Markdown list: where the face-only model lands under the run's `technique` on the detected
    boxes (the protocol's copy) and with the face removed completely (`attribution.REMOVAL`), against the floor,
    and the face-blind model's loss under complete removal; the judgement is `controls._visible_judgement`'s
    floor test."""
    if removal.empty:
        return "The model-level controls are off (teaching.model_controls is empty): nothing was removed."
    boxes, gone = attribution.REMOVAL
    g = _removal_means(removal).set_index(["visible", "model", "technique", "boxes"])
    out = []
    for model in dict.fromkeys(removal.model):
        if ("face_only", model, gone, boxes) not in g.index:
            continue
        o, p = g.loc[("face_only", model, gone, boxes)], g.loc[("face_only", model, technique, "detected")]
        if o.orig_orig < measures.LEARNED * o.floor:
            out.append(f"- {model}: the face-only model learned too little of the faces to be read ({o.orig_orig:.1f} "
                       f"mAP on the originals, {o.orig_orig / o.floor:.1f}x the floor of {o.floor:.1f}; at least "
                       f"{measures.LEARNED:g}x needed).")
            continue
        reached = o.after <= measures.FLOOR_REACHED * o.floor
        line = (f"- {model}: seeing only the face, {o.orig_orig:.1f} mAP on the originals; {p.after:.1f} "
                f"({p.after / p.floor:.1f}x the floor) under the protocol's copy ({technique}, detected boxes); "
                f"{o.after:.1f} ({o.after / o.floor:.1f}x the floor of {o.floor:.1f}) with the face removed completely "
                f"({gone}, true boxes): " + ("the face removed, nothing is left, so what the protocol's copy leaves "
                                             "is the anonymization's doing, not the measure's." if reached else
                                             "even removed completely, the face leaves more than the floor."))
        if technique != gone and ("face_only", model, gone, "detected") in g.index and \
                ("face_only", model, technique, boxes) in g.index:
            d, t = g.loc[("face_only", model, gone, "detected")], g.loc[("face_only", model, technique, boxes)]
            line += (f" One change at a time: {gone} on the detected boxes gives {d.after:.1f} (what {technique} leaves "
                     f"behind is gone, the detector's misses and box sizes stay), {technique} on the true boxes "
                     f"gives {t.after:.1f} (the boxes are right, {technique}'s leftovers stay).")
        if ("face_blind", model, gone, boxes) in g.index:
            b = g.loc[("face_blind", model, gone, boxes)]
            line += f" The face-blind model loses {b.orig_orig - b.after:.2f} points to the same removal."
        out.append(line)
    return "\n".join(out) if out else "No face-only model was trained."
