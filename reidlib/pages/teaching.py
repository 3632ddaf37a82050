"""What the teaching chapter shows: the face-identity sweep (the positive and negative controls of the
paper's question, Section IV), its drop per share with the seed spread, and what it says."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from ..analyses.controls import FLOOR_REACHED, LEARNED
from ..book import prose, tables
from ..stages import statistics

PROTOCOLS = ("orig_orig", "orig_anon", "anon_anon")
COMPARISONS = {"tested on anonymized": "orig_anon", "retrained on anonymized": "anon_anon"}
SHARE_LABEL = "share of identities told apart only by the face"
MAIN = "tested on anonymized"


def _models(sweep: pd.DataFrame) -> pd.DataFrame:
    """The sweep with a `model` column (one unnamed model when a table has none)."""
    return sweep if "model" in sweep.columns else sweep.assign(model="the model")


def sweep_table(sweep: pd.DataFrame):
    """mAP and Rank-1 per model, share and protocol: mean and seed SD over the training seeds, for reading (a
    dash where a model has one seed, so no SD)."""
    g = _models(sweep).groupby(["model", "face_identity_share", "protocol"], sort=False)
    t = pd.concat({"mAP": g.mAP.mean(), "mAP seed SD": g.mAP.std(), "Rank-1": g.rank1.mean(),
                   "Rank-1 seed SD": g.rank1.std()}, axis=1).reset_index()
    return tables.shown(t, digits=1, headers={"face_identity_share": "share"})


def drops(sweep: pd.DataFrame) -> pd.DataFrame:
    """Per model, share and seed, the mAP drop of each comparison the sweep has (retrained only with
    teaching.retrain)."""
    per_seed = _models(sweep).pivot_table(index=["model", "face_identity_share", "seed"], columns="protocol",
                                          values="mAP", sort=False)
    return pd.DataFrame({name: per_seed.orig_orig - per_seed[after] for name, after in COMPARISONS.items()
                         if after in per_seed}).reset_index()


def sweep_figure(sweep: pd.DataFrame, d: pd.DataFrame):
    """Left: mAP per protocol against the share; right: each comparison's drop (band: SD over seeds); one line
    style per model."""
    sweep = _models(sweep)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    sns.lineplot(data=sweep, x="face_identity_share", y="mAP", hue="protocol", style="model", marker="o", ax=axes[0],
                 errorbar="sd", hue_order=[p for p in PROTOCOLS if p in set(sweep.protocol)])
    axes[0].set_xlabel(SHARE_LABEL)
    long = d.melt(id_vars=["model", "face_identity_share", "seed"], var_name="comparison", value_name="drop")
    sns.lineplot(data=long, x="face_identity_share", y="drop", hue="comparison", style="model", marker="o",
                 errorbar="sd", ax=axes[1])
    axes[1].axhline(0, color="black", linewidth=0.8)
    axes[1].set_xlabel(SHARE_LABEL)
    axes[1].set_ylabel("mAP drop (points)")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def sweep_text(d: pd.DataFrame, alpha: float = 0.05) -> str:
    """Per model: the drop at the lowest and the highest share (with its seed SD), and whether it grows with
    the share beyond the seeds' noise (`statistics.drop_grows`; with one seed it cannot say)."""
    d = _models(d)
    named = d.model.nunique() > 1
    out = []
    for model, g in d.groupby("model", sort=False):
        mean = g.groupby("face_identity_share")[MAIN].mean()
        sd = g.groupby("face_identity_share")[MAIN].std()
        lo, hi = mean.index.min(), mean.index.max()

        def spread(share: float, g: pd.DataFrame = g, sd: pd.Series = sd) -> str:
            return f" (SD {sd.loc[share]:.1f} over seeds)" if g.seed.nunique() > 1 else ""

        who = f"{model}: at" if named else "At"
        text = (f"{who} share {lo:g}, blurring the test faces {prose.lowers(mean.loc[lo], 'mAP')}{spread(lo)}; "
                f"at share {hi:g}, it {prose.lowers(mean.loc[hi], 'mAP')}{spread(hi)}. ")
        grows = statistics.drop_grows(g[g.face_identity_share == hi][MAIN], g[g.face_identity_share == lo][MAIN], alpha)
        if grows["found"]:
            text += ("The more identities only the face separates, the more blurring costs, as it should: "
                     "a blurred face removes the one cue that tells twins apart.")
        elif grows["found"] is None and mean.loc[hi] > mean.loc[lo]:
            text += ("The drop is larger at the higher share; with one training seed this run cannot tell that "
                     "from seed noise.")
        else:
            beyond = f" beyond the seeds' noise (p = {grows['p_value']:.2g})" if mean.loc[hi] > mean.loc[lo] else ""
            text += (f"Here the drop does not grow with the share{beyond}: a network only loses what it learned to "
                     "rely on (its training accuracy against the twin ceiling, in this chapter, says whether it "
                     "learned the faces).")
        out.append(text)
    return " ".join(out)


def top_share_numbers(sweep: pd.DataFrame) -> dict[str, str]:
    """At the highest share, per model: orig/orig and anon/anon mAP as mean ± SD over seeds (anon/anon only
    when retrained)."""
    sweep = _models(sweep)
    share = sweep.face_identity_share.max()
    top = sweep[sweep.face_identity_share == share]
    named = top.model.nunique() > 1

    def each(protocol: str) -> str:
        parts = []
        for model, g in top[top.protocol == protocol].groupby("model", sort=False):
            parts.append((f"{model} " if named else "") + f"{g.mAP.mean():.1f} ± {g.mAP.std():.1f}")
        return ", ".join(parts)

    return {"top_share": f"{share:g}", "top_oo": each("orig_orig"),
            "top_aa": (each("anon_anon") if (top.protocol == "anon_anon").any()
                       else "not trained here (set teaching.retrain: true)")}


def sweep_numbers(cfg) -> dict[str, str]:
    """What the sweep trains, for the page: each model with its epochs, the worlds' identities and face widths."""
    from ..analyses.teaching import sweep_config
    from ..core.config import trainings
    from ..models.zoo import display_name

    sub = sweep_config(cfg, max(cfg.teaching.shares))
    recipes = [f"{display_name(m)} for {t.epochs} epochs" for m, t in trainings(sub).items()]
    lo, hi = sub.dataset.face_size
    return {"sweep_recipes": " and ".join([", ".join(recipes[:-1]), recipes[-1]] if len(recipes) > 1 else recipes),
            "sweep_ids": str(sub.dataset.train_ids + sub.dataset.test_ids),
            "sweep_faces": f"{lo}" if lo == hi else f"{lo} to {hi}"}


VISIBLE_WORDS = {"face_only": "face only", "face_blind": "face blind"}


def model_controls_table(mc: pd.DataFrame):
    """The model-level controls for reading: per world and model, mAP on the masked originals and on their
    anonymized copy, the drop, the random floor and the last epoch's training accuracy (mean over seeds)."""
    g = (mc.assign(visible=mc.visible.map(VISIBLE_WORDS))
         .groupby(["visible", "model"], sort=False)[["orig_orig", "orig_anon", "drop", "floor", "accuracy"]]
         .mean().reset_index())
    return tables.shown(g, digits=1, headers={"visible": "the model sees", "orig_orig": "mAP orig/orig",
                                              "orig_anon": "mAP orig→anon", "drop": "drop (points)",
                                              "floor": "random floor", "accuracy": "train accuracy (%)"})


def model_controls_text(mc: pd.DataFrame, training: pd.DataFrame | None = None, taught: float | None = None) -> str:
    """What the model-level controls show: whether the face-only model falls to the floor when its faces are
    anonymized (within `FLOOR_REACHED` x; unless it learned too little of them, below `LEARNED` x), and whether the face-blind
    model loses nothing (its copy has no face to change). Given the sweep's `training` (`teaching.sweep_training`)
    and the controls' check (`taught` points), also how far the face-blind model's training accuracy gets above the
    twin ceiling with no face to see: what remembering the training images alone reaches."""
    if mc.empty:
        return "No model-level control was trained (teaching.model_controls is empty)."
    out = []
    for model, g in mc.groupby("model", sort=False):
        d = g.groupby("visible")[["orig_orig", "orig_anon", "drop", "floor"]].mean()
        parts = []
        if "face_only" in d.index:
            o = d.loc["face_only"]
            at = o.orig_anon / o.floor
            seen = (f"seeing only the face, it scores {o.orig_orig:.1f} mAP on the originals and {o.orig_anon:.1f} "
                    f"once the faces are anonymized, {at:.1f}x the random floor of {o.floor:.1f} ")
            if o.orig_orig < LEARNED * o.floor:
                parts.append(seen + f"(it learned too little of the faces to be read: {o.orig_orig / o.floor:.1f}x "
                                    f"the floor on the originals, at least {LEARNED:g}x needed)")
            else:
                parts.append(seen + ("(at the floor: with the face gone it has nothing left)" if at <= FLOOR_REACHED else
                                     "(above the floor: the anonymized copy still shows something of the face that it "
                                     "uses; chapter 8 tells the boxes' part from the technique's)"))
        if "face_blind" in d.index:
            b = d.loc["face_blind"]
            parts.append(f"never seeing a face, it scores {b.orig_orig:.1f} and loses {b['drop']:.2f} points")
            if training is not None and taught is not None and not training.empty:
                top = training[training.face_identity_share == training.face_identity_share.max()]
                ceiling = float(top.twin_ceiling.mean())
                acc = float(g[g.visible == "face_blind"].accuracy.mean())
                parts.append(f"on its training images it reaches {acc:.1f}%, {acc - ceiling:+.1f} points from the twin "
                             f"ceiling of {ceiling:.0f}% with no face to tell twins by: what remembering the training "
                             f"images alone gets (the controls' check asks for {taught:+g})")
        out.append(f"{model}: " + "; ".join(parts) + ".")
    return " ".join(out)
