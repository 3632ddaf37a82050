"""Every measure of face importance against both controls, in one table (beyond the paper).

A measure counts only when it finds nothing in the negative control (each crop a random face: the face
carries no identity) and finds use of the face in the positive control (only the face separates clothing
twins). Each row's verdict is computed here from the measure's own results: the protocol drop (teaching
sweep, `findings.control_drops`), the face-only intervention (`attribution.control_interventions`), the face
share ratio (`attribution.control_separation`, and the model and
data randomization checks of Adebayo et al. 2018, `attribution.sanity_checks`), the protocol drop on the
face-only and face-blind models (chapter 7's anonymization, and the face removed completely:
`attribution.model_control_removal`), the head attacker (`privacy.control_verdict`) and the face attacker
(`privacy.face_control_verdict`).
"""
from __future__ import annotations

import pandas as pd

from ..book.prose import plural
from . import attribution, privacy

COLUMNS = ["measure", "negative control", "positive control", "verdict", "why", "role", "instrument", "model"]
PASSES, FAILS, CANNOT = "passes", "fails", "cannot tell"
READING = "reading"  # an instrument's reading on the control worlds: what a verdict on faces may rest on
CHECK = "check"  # a check of an instrument on one model (model-level controls, randomizations): it can disqualify it
EVERY = "every instrument"  # a check's instrument when it checks the model itself: it can disqualify all its readings


def _of(instrument: str, model: str | None, role: str) -> dict:
    """The columns that tie a row to its instrument and model, and say whether it is a reading or a check."""
    return {"instrument": instrument, "model": model or "", "role": role}


def drop_judgement(neg: pd.Series, pos: pd.Series) -> tuple[str, str]:
    """The protocol drop of one model at both controls (rows of `findings.control_drops`): (verdict, why), the
    verdict `passes` when no drop beyond seed noise at the negative control and one at the positive, `fails`
    otherwise, `cannot tell` when either has too few seeds to measure its noise."""
    if neg.found is None or pos.found is None or pd.isna(neg.found) or pd.isna(pos.found):
        return CANNOT, neg.why_not_shown or pos.why_not_shown
    ok = (not neg.found) and bool(pos.found)
    return (PASSES if ok else FAILS,
            f"{'a' if neg.found else 'no'} drop beyond seed noise at the negative control, "
            f"{'a' if pos.found else 'no'} drop at the positive")


def _seed_shown(r: pd.Series) -> str:
    """A drop over seeds as the table shows it: mean ± seed SD, and the number of seeds."""
    sd = "" if pd.isna(r.seed_sd) else f" ± {r.seed_sd:.2f}"
    return f"{r.mean_drop:.2f}{sd} points over {plural(int(r.n_seeds), 'seed')}"


def _protocol_rows(drops: pd.DataFrame, metric: str = "mAP") -> list[dict]:
    """The orig→anon drop at both controls, one row per model, judged by `drop_judgement`."""
    c = drops[(drops.metric == metric) & (drops["after"] == "orig_anon")]
    rows = []
    for model in (c.model.unique() if "model" in c else [None]):
        m = (c if model is None else c[c.model == model]).set_index("control")
        neg, pos = m.loc["negative"], m.loc["positive"]
        verdict, why = drop_judgement(neg, pos)
        rows.append({**_of(f"protocol drop ({metric})", model, READING),
                     "measure": f"protocol drop ({metric}, orig→anon)" + (f", {model}" if model else ""),
                     "negative control": _seed_shown(neg), "positive control": _seed_shown(pos), "verdict": verdict,
                     "why": why})
    return rows


def intervention_judgements(iv: pd.DataFrame):
    """The face-only intervention (only the face boxes anonymized, in query and gallery; chapter 8) at both controls,
    per model and technique (`attribution.control_interventions`): (model, technique, negative row, positive row,
    verdict, why), judged by `drop_judgement`."""
    for (model, technique), g in iv.groupby(["model", "technique"], sort=False):
        m = g.set_index("control")
        if {"negative", "positive"} <= set(m.index):
            neg, pos = m.loc["negative"], m.loc["positive"]
            yield (model, technique, neg, pos, *drop_judgement(neg, pos))


def _intervention_rows(iv: pd.DataFrame) -> list[dict]:
    """The face-only intervention's rows of the table, one per model and technique (`intervention_judgements`)."""
    return [{**_of(f"face-only intervention ({technique})", model, READING),
             "measure": f"face-only intervention ({technique}, AP lost), {model}", "negative control": _seed_shown(neg),
             "positive control": _seed_shown(pos), "verdict": verdict, "why": why}
            for model, technique, neg, pos, verdict, why in intervention_judgements(iv)]


def _ratio_rows(face_share: pd.DataFrame) -> list[dict]:
    """The face share ratio of true matches per model: passes when every seed's interval at the negative
    control lies below every seed's at the positive."""
    rows = []
    ctrl = face_share[(face_share.run != "default") & (face_share.trained_on == "orig")
                      & (face_share.kind == "true match")]
    for r in attribution.control_separation(face_share).itertuples():
        d = ctrl[(ctrl.model == r.model) & (ctrl.method == r.method)]

        def shown(run: str, d: pd.DataFrame = d) -> str:
            g = d[d.run == run]
            return "; ".join(f"{x.ratio:.2f} [{x.ratio_low:.2f}, {x.ratio_high:.2f}]" for x in g.itertuples())

        rows.append({**_of(f"face share ratio ({r.method})", r.model, READING),
                     "measure": f"face share ratio ({r.method}), {r.model} (true matches)", "negative control": shown(r.low),
                     "positive control": shown(r.high), "verdict": PASSES if r.separated else FAILS,
                     "why": ("every interval of the negative control lies below every interval of the positive"
                             if r.separated else "the controls' intervals overlap" + (
                                 ", and the ratio is higher at the negative control than at the positive: it points "
                                 "the wrong way" if r.reversed else ""))})
    return rows


def _sanity_rows(face_share: pd.DataFrame) -> list[dict]:
    """Adebayo et al.'s checks of the face share ratio per model, on the positive control: it passes when the
    ratio changes (intervals apart) once the weights are drawn at random, or once the model is trained on
    shuffled identities."""
    rows = []
    for r in attribution.sanity_checks(face_share).itertuples():
        rows.append({**_of(f"face share ratio ({r.method})", r.model, CHECK),
                     "measure": f"face share ratio ({r.method}), {r.model}: {r.check}",
                     "negative control": f"randomized {r.randomized:.2f} [{r.randomized_low:.2f}, {r.randomized_high:.2f}]",
                     "positive control": f"trained {r.trained:.2f} [{r.trained_low:.2f}, {r.trained_high:.2f}]",
                     "verdict": PASSES if r.changed else FAILS,
                     "why": ("the ratio changes when what the model learned is destroyed" if r.changed else
                             "the randomized model's interval overlaps the trained one's: the map does not depend "
                             "on what the model learned")})
    return rows


NOISE_SDS = 2  # a model control's drop counts as found beyond this many seed SDs of the positive control's drop
LEARNED = 3.0  # a face-only model below this multiple of the floor (orig/orig mAP) learned too little of the faces
FLOOR_REACHED = 1.5  # a face-only model with its face removed completely must fall within this multiple of the floor


def _positive_noise(drops: pd.DataFrame, model: str, metric: str = "mAP") -> float:
    """The seed SD of `model`'s orig→anon drop at the positive control: the noise a model control's drop is read
    against (NaN with one seed)."""
    pos = drops[(drops.control == "positive") & (drops.metric == metric) & (drops["after"] == "orig_anon")]
    sd = pos[pos.model == model].seed_sd if "model" in pos else pos.seed_sd
    return float(sd.iloc[0]) if len(sd) and pd.notna(sd.iloc[0]) else float("nan")


def _visible_means(table: pd.DataFrame, after: str):
    """Per model of a model-level controls table (one row per world, model and seed): (model, face-only means,
    face-blind means), each over seeds with orig_orig, `after` (as `after`), drop and floor; models without both
    worlds are left out."""
    for model in dict.fromkeys(table.model):
        g = (table[table.model == model].groupby("visible")[["orig_orig", after, "drop", "floor"]].mean()
             .rename(columns={after: "after"}))
        if {"face_only", "face_blind"} <= set(g.index):
            yield model, g.loc["face_only"], g.loc["face_blind"]


def _visible_judgement(fo: pd.Series, fb: pd.Series, noise: float, floor_asked: bool = False) -> tuple[str, str]:
    """(verdict, why) of a drop on the model-level controls: the face-only model (`fo`: orig_orig, after, drop,
    floor) must lose more than `NOISE_SDS` x `noise`, the face-blind one (`fb`) no more; with `floor_asked`, the
    face-only model must also fall within `FLOOR_REACHED` x the floor. A face-only model below `LEARNED` x the floor
    on the originals cannot be read: it learned too little of the faces for a drop to be read."""
    if fo.orig_orig < LEARNED * fo.floor:
        return CANNOT, (f"the face-only model learned too little of the faces to be read: orig/orig "
                        f"{fo.orig_orig:.1f}, {fo.orig_orig / fo.floor:.1f}x the floor (at least {LEARNED:g}x needed)")
    if not noise > 0:  # NaN (one seed) or exactly 0: no spread to read a drop against
        return CANNOT, "no seed spread at the positive control to read it against"
    found_pos, found_neg = fo["drop"] > NOISE_SDS * noise, abs(fb["drop"]) > NOISE_SDS * noise
    why = (f"against {NOISE_SDS} seed SDs ({NOISE_SDS * noise:.2f} points): {'a' if found_neg else 'no'} drop for "
           f"the face-blind model, {'a' if found_pos else 'no'} drop for the face-only one")
    ok = found_pos and not found_neg
    if floor_asked:
        at = fo.after / fo.floor
        reached = at <= FLOOR_REACHED
        why += f"; the face-only model {'falls' if reached else 'stays'} at {at:.1f}x the floor (at most {FLOOR_REACHED:g}x needed)"
        ok = ok and reached
    return (PASSES if ok else FAILS), why


def _removal_rows(removal: pd.DataFrame, drops: pd.DataFrame, metric: str = "mAP") -> list[dict]:
    """The protocol drop with the face removed completely (`attribution.REMOVAL`: the true boxes zeroed) on the
    model-level controls, per model: the instrument with an ideal anonymizer must take the face-only model to the
    floor and leave the face-blind one as it was (`_visible_judgement` with the floor asked)."""
    boxes, technique = attribution.REMOVAL
    d = removal[(removal.boxes == boxes) & (removal.technique == technique)]
    rows = []
    for model, fo, fb in _visible_means(d, "after"):
        verdict, why = _visible_judgement(fo, fb, _positive_noise(drops, model, metric), floor_asked=True)
        where = "true" if boxes == "truth" else boxes
        rows.append({**_of(f"protocol drop ({metric})", model, CHECK),
                     "measure": f"protocol drop ({metric}) with the face removed completely ({technique} on the {where} "
                                f"boxes, not the run's anonymization), {model}: face-blind / face-only model",
                     "negative control": f"{fb['drop']:.2f} points",
                     "positive control": f"{fo['drop']:.2f} points (after {fo.after:.1f}, {fo.after / fo.floor:.1f}x the floor)",
                     "verdict": verdict, "why": why})
    return rows


def _model_control_rows(model_ctrl: pd.DataFrame, drops: pd.DataFrame, face_share: pd.DataFrame | None,
                        metric: str = "mAP") -> list[dict]:
    """The protocol drop and the face share ratio on the model-level controls, per model: a face-blind model
    (never sees a face: the measure must find nothing) and a face-only model (sees nothing else: it must find
    the face). The drop's noise is the seed SD of the same model's drop at the positive control
    (`_visible_judgement`)."""
    rows = []
    for model, fo, fb in _visible_means(model_ctrl, "orig_anon"):
        verdict, why = _visible_judgement(fo, fb, _positive_noise(drops, model, metric))
        rows.append({**_of(f"protocol drop ({metric})", model, CHECK),
                     "measure": f"protocol drop ({metric}, orig→anon), {model}: face-blind / face-only model",
                     "negative control": f"{fb['drop']:.2f} points",
                     "positive control": (f"{fo['drop']:.2f} points (orig→anon {fo.after:.1f}, "
                                          f"{fo.after / fo.floor:.1f}x the floor)"),
                     "verdict": verdict, "why": why})
        if face_share is None or face_share.empty:
            continue
        shares = face_share[(face_share.run == attribution.MODEL_CONTROLS_RUN) & (face_share.model == model)
                            & (face_share.kind == "true match")]
        for method, r in shares.groupby("method", sort=False):
            r = r.set_index("trained_on")
            if {"face only", "face blind"} <= set(r.index):
                rows.append(share_control_row(model, method, r.loc["face only"], r.loc["face blind"]))
    return rows


TAUGHT = 20.0  # points of training accuracy above the twin ceiling that show a model learned the positive world's faces


def taught(training: pd.DataFrame) -> pd.DataFrame:
    """Per model, whether the positive control taught it the faces (`teaching.sweep_training`): its last-epoch
    training accuracy there (mean over seeds), the twin ceiling (what telling clothes apart but not faces reaches),
    the seeds, `ok` when the accuracy is at least `TAUGHT` points above the ceiling, and `why` in words."""
    top = training[training.face_identity_share == training.face_identity_share.max()]
    rows = []
    for model, g in top.groupby("model", sort=False):
        acc, ceiling = float(g.accuracy.mean()), float(g.twin_ceiling.mean())
        ok = acc >= ceiling + TAUGHT
        rows.append({"model": model, "accuracy": acc, "ceiling": ceiling, "seeds": len(g), "ok": ok,
                     "why": f"{acc - ceiling:+.1f} points from the twin ceiling (at least {TAUGHT:+g} needed)"})
    return pd.DataFrame(rows, columns=["model", "accuracy", "ceiling", "seeds", "ok", "why"])


def untaught(training: pd.DataFrame | None) -> dict[str, str]:
    """The models the positive control did not teach the faces, each with why (`taught`): none without `training`."""
    if training is None or training.empty:
        return {}
    t = taught(training)
    return {r.model: (f"the positive control did not teach {r.model} the faces: {r.accuracy:.1f}% training "
                      f"accuracy, {r.accuracy - r.ceiling:+.1f} points from the twin ceiling where at least "
                      f"{TAUGHT:+g} are needed") for r in t[~t.ok].itertuples()}


def _taught_rows(training: pd.DataFrame) -> list[dict]:
    """Whether the positive control taught each model the faces (`taught`). A model it did not teach has no face
    use for any instrument to find: every reading of that model is disqualified (`passing`)."""
    return [{**_of(EVERY, r.model, CHECK),
             "measure": f"the positive control taught {r.model} the faces: training accuracy",
             "negative control": "",
             "positive control": f"{r.accuracy:.1f}% over {plural(r.seeds, 'seed')} (twin ceiling {r.ceiling:.0f}%)",
             "verdict": PASSES if r.ok else FAILS,
             "why": r.why + (": it tells twins apart by their faces" if r.ok else
                             ": it does not tell twins apart, so a reading of it cannot show face use")}
            for r in taught(training).itertuples()]


FACE_ONLY_RATIO = 2.0  # the face-only model's face share ratio interval must lie above this


def share_control_row(model: str, method: str, o: pd.Series, b: pd.Series) -> dict:
    """The face share ratio on the model-level controls: passes when the face-only model's interval lies above
    `FACE_ONLY_RATIO` and the face-blind model's covers 1 or lies below it."""
    ok = bool(o.ratio_low > FACE_ONLY_RATIO and b.ratio_low <= 1)
    return {**_of(f"face share ratio ({method})", model, CHECK),
            "measure": f"face share ratio ({method}), {model}: face-blind / face-only model",
            "negative control": f"{b.ratio:.2f} [{b.ratio_low:.2f}, {b.ratio_high:.2f}]",
            "positive control": f"{o.ratio:.2f} [{o.ratio_low:.2f}, {o.ratio_high:.2f}]",
            "verdict": PASSES if ok else FAILS,
            "why": (f"the face-only model's interval {'lies above' if o.ratio_low > FACE_ONLY_RATIO else 'reaches below'} "
                    f"{FACE_ONLY_RATIO:g}, "
                    f"the face-blind model's {'covers 1 or lies below it' if b.ratio_low <= 1 else 'lies above 1'}")}


def _at_chance(v: dict) -> str:
    """Why an attacker's controls cannot be read (`privacy.control_verdict` or `face_control_verdict` not readable)."""
    return (f"the attacker is at chance: Rank-1 {v['original_rank1']:.1f}% on the positive control's originals "
            f"against chance {v['chance_rank1']:.1f}% (it must reach {privacy.ABOVE_CHANCE:g}x), so it has nothing "
            f"for anonymization to take")


def _attacker_row(ctrl: pd.DataFrame) -> dict:
    """What anonymization takes from the head attacker: passes when it takes more at the positive control than
    at the negative (or than nothing) by more than the seeds' largest spread; cannot tell when the attacker
    identifies people on the positive control's originals no better than `privacy.ABOVE_CHANCE` x chance."""
    v = privacy.control_verdict(ctrl)
    row = {**_of("head attacker", "", READING),
           "measure": f"head attacker ({privacy.SCORE_NAMES[privacy.CONTROL_SCORE]} taken by anonymization)",
           "negative control": f"{v['low_gain']:.1f} points", "positive control": f"{v['high_gain']:.1f} points"}
    if not v["readable"]:
        return {**row, "verdict": CANNOT, "why": _at_chance(v)}
    return {**row, "verdict": PASSES if v["found"] else FAILS,
            "why": (f"the difference {'exceeds' if v['found'] else 'is within'} the seeds' spread "
                    f"({v['spread']:.1f} points)")}


def _face_attacker_row(fc: pd.DataFrame, seed: int = 0) -> dict:
    """What anonymization takes from the face attacker (dlib: no training, so no seeds; intervals from a bootstrap
    over probes, `privacy.face_control_verdict`): passes when the negative control's interval covers zero (or lies
    below it) and the positive control's lies above zero and above the negative's."""
    v = privacy.face_control_verdict(fc, seed=seed)

    def shown(side: str) -> str:
        return f"{v[f'{side}_gain']:.1f} [{v[f'{side}_gain_low']:.1f}, {v[f'{side}_gain_high']:.1f}] points"

    row = {**_of("face attacker", "", READING),
           "measure": "face attacker (AP taken by anonymization)", "negative control": shown("low"),
           "positive control": shown("high")}
    if not v["readable"]:
        return {**row, "verdict": CANNOT, "why": _at_chance(v)}
    return {**row, "verdict": PASSES if v["found"] else FAILS,
            "why": (f"{v['confidence']:.0%} intervals over probes: {'a' if v['found_low'] else 'no'} loss at the "
                    f"negative control, {'a' if v['found_high'] else 'no'} larger loss at the positive")}


def instruments(drops: pd.DataFrame, face_share: pd.DataFrame | None = None,
                head: pd.DataFrame | None = None, metric: str = "mAP",
                model_controls: pd.DataFrame | None = None, face: pd.DataFrame | None = None,
                seed: int = 0, interventions: pd.DataFrame | None = None,
                removal: pd.DataFrame | None = None, training: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per measure of face importance: its value at the negative and the positive control and whether
    it passes both (`passes`), fails one (`fails`) or cannot be judged here (`cannot tell`), with why; with
    `training` (the sweep's training accuracy), first a check per model that the positive control taught it."""
    rows = _taught_rows(training) if training is not None and not training.empty else []
    rows += _protocol_rows(drops, metric)
    if interventions is not None and not interventions.empty:
        rows += _intervention_rows(interventions)
    if face_share is not None and not face_share.empty:
        rows += _ratio_rows(face_share) + _sanity_rows(face_share)
    if model_controls is not None and not model_controls.empty:
        rows += _model_control_rows(model_controls, drops, face_share, metric)
    if removal is not None and not removal.empty:
        rows += _removal_rows(removal, drops, metric)
    if head is not None and not head.empty:
        rows.append(_attacker_row(head))
    if face is not None and not face.empty:
        rows.append(_face_attacker_row(face, seed))
    return pd.DataFrame(rows, columns=COLUMNS)


def passing(table: pd.DataFrame) -> list[str]:
    """The readings that pass both controls and whose instrument fails no check on the same model (the model-level
    controls, the randomization checks; a check that cannot tell does not count against it), nor does the model
    (`EVERY`: the positive control did not teach it the faces): the only measures a verdict on faces may rest on."""
    failed = set(map(tuple, table[(table.role == CHECK) & (table.verdict == FAILS)][["instrument", "model"]].to_numpy()))
    ok = table[(table.role == READING) & (table.verdict == PASSES)]
    return [r.measure for r in ok.itertuples() if (r.instrument, r.model) not in failed and (EVERY, r.model) not in failed]
