"""What chapter 9 shows (beyond the paper, which measures only what anonymization costs re-ID): the two
attackers' success on the anonymized faces, the face attacker's ceiling, the privacy-utility front and the
controls, in words, tables and figures."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from ..analyses import privacy as analysis
from ..book import plots, prose, tables
from ..models.zoo import display_name

TECHNIQUE_NAMES = {"none": "original", "blur": "blur", "pixelate": "pixelate", "zero": "black box",
                   "blank": "mean colour", "inpaint": "inpaint"}
ATTACKER_NAMES = {"face": "face", "head": "head"}
POINT_COLUMNS = {"setting": "setting", "face_rank1": "face Rank-1", "face_tar_far0.01": "face TAR@1%",
                 "face_tar_far0.001": "face TAR@0.1%", "head_rank1": "head Rank-1", "head_tar_far0.01": "head TAR@1%",
                 "map_orig_anon": "re-ID mAP (tested on copy)", "map_anon_anon": "re-ID mAP (retrained on copy)"}
EASIER_TASK = ("Every image of an identity carries the same face photograph, scaled and lit differently, so this "
               "is an easier task than recognising a person across different photographs: the ceiling is an upper "
               "bound.")
NO_CEILING = "The face attacker was not run, so its ceiling is unknown here. "
CONTROLS_PASS = ("The measure finds protection where only the face identifies people and none where it does not: "
                 "the controls pass.")
CONTROLS_FAIL = ("Here the difference does not clear the seeds' spread: with these few identities and epochs the "
                 "measure cannot tell the two worlds apart, so its numbers above are not to be trusted beyond that "
                 "spread.")
CONTROLS_AT_CHANCE = ("The attacker itself is at chance on the positive control's originals (Rank-1 {orig:.1f}% "
                      "against chance {chance:.1f}%): it identifies no one there, so anonymization has nothing to "
                      "take and these controls cannot tell whether the measure works.")


def setting_name(technique: str, strength: float | None) -> str:
    """A point in plain words: 'blur, sigma = w/8', 'pixelate, 6x6 blocks', 'black box', 'original'."""
    if technique == "blur":
        return f"blur, sigma = w/{1 / strength:g}"
    if technique == "pixelate":
        return f"pixelate, {int(strength)}x{int(strength)} blocks"
    return TECHNIQUE_NAMES.get(technique, technique)


def setting_names(points: pd.DataFrame) -> list[str]:
    """Each row's setting in plain words (`setting_name`), in the table's order."""
    return [setting_name(r.technique, r.strength) for r in points.itertuples()]


def _by_label(points: pd.DataFrame) -> dict[str, str]:
    return dict(zip(points.label, setting_names(points)))


def head_origin(pretrained: str) -> str:
    """How the head attacker's weights start, in words: `privacy.head_pretrained` (none, imagenet or a file)."""
    if pretrained == "none":
        return "trained from scratch"
    if pretrained == "imagenet":
        return "fine-tuned from ImageNet weights"
    return f"fine-tuned from the weights in {Path(pretrained).name}"


def headline_numbers(points: pd.DataFrame, summary: dict) -> dict:
    """The numbers the chapter's prose quotes, keyed as glued: test faces, chance Rank-1, the two
    models, the leaked share of faces and both attackers' Rank-1 on the originals."""
    orig = analysis.original(points)
    face = "not measured"
    if summary["face_attacker"]:
        face = f"{orig.face_rank1:.1f}"
    return {"n_faces": summary["test_faces"],
            "chance_rank1": f"{summary['chance']['rank1']:.1f}", "head_model": display_name(summary["head_model"]),
            "head_origin": head_origin(summary["head_pretrained"]),
            "head_size": "x".join(str(v) for v in summary["head_size"]),
            "reid_model": display_name(summary["model"]), "leaked": f"{points.leaked_faces.iloc[-1]:.0f}",
            "head_orig_rank1": f"{orig.head_rank1:.1f}", "face_orig_rank1": face}


def face_status(summary: dict) -> str:
    """A bold note when the face attacker was not run (and why); nothing when it was."""
    if summary["face_attacker"]:
        return ""
    return f"**The face attacker was not run here:** {summary['face_attacker_reason']}. Only the head attacker is shown."


def ceiling_figure(ceiling: pd.DataFrame, summary: dict):
    """Bars of the face attacker's Rank-1 on unmodified faces by face width (this run's, then generated sets of one
    width), chance dashed; a placeholder when the attacker was not run."""
    if not analysis.ceiling_shown(summary, ceiling):
        fig, ax = plt.subplots(figsize=(4, 2))
        ax.text(0.5, 0.5, "face attacker not run", ha="center", va="center")
        ax.axis("off")
        return fig
    fig, ax = plt.subplots(figsize=(6, 3))
    c = ceiling.assign(label=[f"{w} px" + (" (this run)" if s == "this run" else "")
                              for w, s in zip(ceiling.width, ceiling.source)])
    sns.barplot(data=c, x="label", y="rank1", hue="source", dodge=False, ax=ax)
    ax.axhline(summary["chance"]["rank1"], color="black", linestyle="--", linewidth=1, label="chance (this run)")
    ax.set_xlabel("face width")
    ax.set_ylabel("Rank-1 (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def ceiling_text(ceiling: pd.DataFrame, summary: dict) -> str:
    """The ceiling in words: the range of Rank-1 over face widths and where it passes 50%, and why it is an upper
    bound."""
    if not analysis.ceiling_shown(summary, ceiling):
        return NO_CEILING + EASIER_TASK
    s = analysis.ceiling_summary(ceiling)
    passes = (f"It passes {s['level']:.0f}% from {s['passes_at']} px. " if s["passes_at"] is not None
              else f"It never reaches {s['level']:.0f}%. ")
    return (f"By face width, Rank-1 runs from {s['low']:.0f}% to {s['high']:.0f}% (at {s['best_width']} px). "
            + passes + EASIER_TASK)


def points_table(points: pd.DataFrame):
    """Every setting: both attackers' Rank-1 and TAR, the re-ID model's mAP on the copy (and retrained on it)."""
    shown = points.assign(setting=setting_names(points))
    return tables.shown(shown[[c for c in POINT_COLUMNS if c in shown]], index="setting", digits=1,
                        headers=POINT_COLUMNS)


def front_figure(points: pd.DataFrame, summary: dict):
    """Attacker Rank-1 against re-ID mAP for every setting, one panel per attacker clearly above chance on the
    originals (one at chance measures nothing and is left out of the front): the front circled in grey, its knee,
    the retrained models as stars, the originals as a red cross, chance dashed. A sentence when no attacker is."""
    chance = summary["chance"]["rank1"]
    atts = [a for a in analysis.attackers(summary) if analysis.above_chance(points, summary, a)]
    if not atts:
        return plots.note_figure(f"no attacker is clearly above chance ({chance:.1f}%) on the original images, so "
                                 "no privacy-utility front is drawn")
    knees = analysis.knees(summary, "orig_anon")
    orig = analysis.original(points)
    anon = points[points.technique != "none"]
    named = anon.assign(technique=[TECHNIQUE_NAMES.get(t, t) for t in anon.technique])  # the legend as the table
    fig, axes = plt.subplots(1, len(atts), figsize=(5.2 * len(atts), 3.8), squeeze=False)
    for ax, att in zip(axes[0], atts):
        x = f"{att}_rank1"
        sns.scatterplot(data=named, x=x, y="map_orig_anon", hue="technique", style="technique", s=70, ax=ax)
        front = anon[anon[f"front_{att}_orig_anon"].astype(bool)].sort_values(x)
        ax.plot(front[x], front.map_orig_anon, color="grey", linewidth=1, marker="o", markersize=13,
                fillstyle="none", zorder=0, label="front")  # circled: a front of one point shows too
        rr = anon.dropna(subset=["map_anon_anon"])
        ax.scatter(rr[x], rr.map_anon_anon, marker="*", s=120, color="black", label="retrained on copy")
        ax.scatter([orig[x]], [orig.map_orig_anon], marker="X", s=90, color="red", label="original")
        k = knees[att]
        ax.annotate("knee", (k["knee_attack_rank1"], k["knee_map"]), xytext=(8, -14), textcoords="offset points")
        ax.axvline(chance, color="black", linestyle="--", linewidth=1)
        ax.set_xlabel(f"{ATTACKER_NAMES[att]} attacker Rank-1 (%)  (lower = more private)")
        ax.set_ylabel("re-ID mAP (%)  (higher = more useful)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def front_text(points: pd.DataFrame, summary: dict) -> str:
    """One sentence per attacker: the knee of the front (tested on the copy), its attack Rank-1 and re-ID mAP, and
    whether that Rank-1 is any lower than on the original images."""
    names, chance = _by_label(points), summary["chance"]["rank1"]
    parts = []
    for a, f in analysis.knees(summary, "orig_anon").items():
        if not analysis.above_chance(points, summary, a):
            rank1 = analysis.original(points)[f"{a}_rank1"]
            parts.append(f"The {a} attacker's Rank-1 on the original images ({rank1:.1f}%) is not clearly above "
                         f"chance ({chance:.1f}%; at least {analysis.ABOVE_CHANCE:g}x is asked): it identifies no "
                         "one before anonymization, so it measures nothing after, and no knee is named for it.")
            continue
        text = (f"Against the {a} attacker the knee of the front is **{names[f['knee']]}**: attacker Rank-1 "
                f"{f['knee_attack_rank1']:.1f}% for a re-ID mAP of {f['knee_map']:.1f}%.")
        rank1 = analysis.original(points)[f"{a}_rank1"]
        if round(f["knee_attack_rank1"], 1) >= round(rank1, 1):  # as shown; the front has anonymized copies only
            text += (f" That is no lower than its Rank-1 on the original images ({rank1:.1f}%): against this attacker "
                     "the knee buys no privacy, it is only the copy that costs re-ID least.")
        parts.append(text)
    return " ".join(parts)


def control_figure(ctrl: pd.DataFrame):
    """The head attacker's mAP (the controls' score, `analyses.privacy.CONTROL_SCORE`) at each control share, one
    dot per seed, on originals and on the run's anonymization; a sentence instead when every value is the same."""
    score, name = analysis.CONTROL_SCORE, analysis.SCORE_NAMES[analysis.CONTROL_SCORE]
    if ctrl[score].nunique() <= 1:
        value = f"{ctrl[score].iloc[0]:.1f}%" if len(ctrl) else "not measured"
        return plots.note_figure(f"the head attacker's {name} is {value} in every control world, seed and variant, "
                                 "so there is nothing to compare: it identifies no one from heads this size")
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    sns.stripplot(data=ctrl, x="face_identity_share", y=score, hue="variant", dodge=True, s=7, ax=ax,
                  hue_order=["original", "anonymized"])
    ax.set_xlabel("share of identities told apart only by the face")
    ax.set_ylabel(f"head attacker {name} (%)")
    ax.set_ylim(0, 105)
    fig.tight_layout()
    return fig


def control_text(verdict: dict) -> str:
    """What anonymization takes from the head attacker at the lowest and highest share, and whether the controls
    pass (`analyses.privacy.control_verdict`)."""
    v, score = verdict, f"the head attacker's {analysis.SCORE_NAMES[analysis.CONTROL_SCORE]}"
    return (f"Anonymization {prose.lowers(v['low_gain'], score)} at share {v['low_share']:g} "
            f"and {prose.lowers(v['high_gain'], 'it')} at share {v['high_share']:g} (seed spread up to "
            f"{v['spread']:.1f} points). "
            + (CONTROLS_AT_CHANCE.format(orig=v["original_rank1"], chance=v["chance_rank1"]) if not v["readable"]
               else CONTROLS_PASS if v["found"] else CONTROLS_FAIL))


def face_control_text(face_ctrl: pd.DataFrame, summary: dict, seed: int = 0) -> str:
    """The same controls for the face attacker (`analyses.privacy.face_control_verdict`: no seeds, so intervals
    over probes), or why they were not run."""
    if not summary["face_attacker"] or face_ctrl.empty:
        return "The face attacker was not run, so its controls were not either."
    v = analysis.face_control_verdict(face_ctrl, seed=seed)

    def gain(side: str) -> str:
        return (f"{v[f'{side}_gain']:.1f} points of its AP ({v['confidence']:.0%} interval over probes "
                f"{v[f'{side}_gain_low']:.1f} to {v[f'{side}_gain_high']:.1f})")

    head = (f"The face attacker needs no training, so it has no seeds: at share {v['low_share']:g} anonymization takes "
            f"{gain('low')}, at share {v['high_share']:g} {gain('high')}. ")
    if not v["readable"]:
        return head + CONTROLS_AT_CHANCE.format(orig=v["original_rank1"], chance=v["chance_rank1"])
    return head + ("Its controls pass: no loss beyond the probes' noise where the face carries no identity, a larger "
                   "one where only the face does." if v["found"] else
                   "Its controls fail: " + ("it loses beyond the probes' noise where the face carries no identity."
                                            if v["found_low"] else "the loss at share "
                                            f"{v['high_share']:g} does not clear zero and the other world's interval."))


def _pct(x: float) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1f}"


def summary_lines(points: pd.DataFrame, summary: dict) -> str:
    """The run in a Markdown list: the face attacker on the originals and under the run's anonymization, the head
    attacker before and after, and the faces the detector missed."""
    orig = analysis.original(points)
    chance = summary["chance"]["rank1"]
    rp = points[points.label == summary["run_point"]]
    lines = []
    if summary["face_attacker"]:
        lines.append(f"- The face attacker reaches Rank-1 {_pct(orig.face_rank1)}% on the unmodified faces "
                     f"(chance {chance:.1f}%), TAR {_pct(orig['face_tar_far0.01'])}% at FAR 1%.")
        if len(rp):
            lines.append(f"- Under the run's anonymization ({setting_names(rp)[0]}) it falls to Rank-1 "
                         f"{_pct(rp.face_rank1.iloc[0])}%, TAR {_pct(rp['face_tar_far0.01'].iloc[0])}% at FAR 1%.")
    after = f" and {_pct(rp.head_rank1.iloc[0])}% after retraining on the run's anonymization." if len(rp) else "."
    lines.append(f"- The head attacker reaches Rank-1 {_pct(orig.head_rank1)}% on the originals" + after)
    lines.append(f"- {points.leaked_faces.iloc[-1]:.0f}% of the true test faces were missed by the detector and stay "
                 "visible.")
    return "\n".join(lines)
