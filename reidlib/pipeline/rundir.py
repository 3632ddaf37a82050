"""The paper's six stages over one run directory (formats in `reidlib.core.runfiles`), each resumable.

Each `stage_*` returns its output path, computing it only when absent, and first makes sure its
inputs exist by calling the stage before it; so any notebook can run alone with its defaults,
while under Snakemake the inputs are always there already. An existing output made with another
configuration is refused rather than silently reused. What each stage's outputs depend on comes from
the stage table (`reidlib.pipeline.table.conf`).
"""
from __future__ import annotations

import shutil
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd

from ..core import images, registry
from ..core.config import Config, project_path, to_dict, trainings
from ..core.runfiles import (
    VARIANTS,
    ForeignFilesError,
    anon_manifest,
    anon_root,
    atomic_write_text,
    audit_changes_path,
    audit_files,
    audit_path,
    audit_summary_path,
    dataset_root,
    derived_root,
    detections_path,
    evaluation_path,
    file_sha256,
    files_in,
    fingerprint_files,
    finished,
    first_names,
    grid_results_path,
    grid_statistics_path,
    make_meta,
    meta_path,
    model_dir,
    model_query_ap_path,
    model_results_path,
    output_folder,
    read_json,
    recall_path,
    records_path,
    source_root,
    statistics_path,
    tree_digest,
    unreadable_path,
    variant_root,
    write_csv,
    write_json,
)
from ..models import faces as dlib_faces
from ..stages import (
    anonymize,
    datasets,
    detection,
    evaluation,
    recall,
    statistics,
    synthetic,
    training,
)
from . import table

DETECTION_PART = 2000  # images per resumable part of stage 1


def stage_generate(cfg: Config, replace_stale: bool = False) -> Path:
    """Stage 0: the generated default dataset (skipped when `dataset.root` names a real one).

    With `replace_stale`, a generated dataset made with another configuration is removed first
    (only ever inside the run directory; a user's dataset is never touched).
    """
    root, d = dataset_root(cfg), cfg.dataset
    if d.root:
        source = source_root(cfg)
        if not source.is_dir():
            raise datasets.DatasetError(f"dataset folder not found: {source}")
        prepare = registry.dataset(d.name).prepare
        if prepare is not None:  # files a format needs, made once outside the user's tree
            prepare(source, derived_root(cfg), d)
        return root
    try:
        return synthetic.generate(root, cfg.dataset, cfg.seed)
    except synthetic.IncompleteDatasetError as e:  # ours, inside the run directory: made again
        _remove_generated(root)
        print(f"note: {e}; generating it again", file=sys.stderr)
    except FileExistsError:
        if not replace_stale:
            raise
        _remove_generated(root)
    return synthetic.generate(root, cfg.dataset, cfg.seed)


def _remove_generated(root: Path) -> None:
    """Remove a generated dataset to make it again, refused (naming them) while it holds files the generator
    did not write: a user's file there is never deleted."""
    foreign = synthetic.foreign_files(root)
    if foreign:
        raise ForeignFilesError(f"{root} must be generated again, but holds files the generator did not write: "
                                f"{first_names(foreign)}; move them out of it, "
                                f"then run again")
    shutil.rmtree(root)


def stage_records(cfg: Config, progress: bool = False) -> Path:
    """Stage 0 output for the workflow: the original dataset's records as `data/records.csv`."""
    root = stage_generate(cfg, replace_stale=True)
    out = records_path(cfg)
    write_csv(out, records(cfg), make_meta("records", table.conf(cfg, "records"), cfg.seed, fingerprint_files(root)))
    return out


def records(cfg: Config, variant: str = "orig", usable: bool = True) -> pd.DataFrame:
    """Image records of the dataset (generated first when absent), or of its anonymized copy; `usable` leaves
    out the images that cannot be decoded when `detection.skip_unreadable` is set (see `unreadable`)."""
    root = stage_generate(cfg) if variant == "orig" else variant_root(cfg, variant)
    recs = datasets.read_section(cfg.dataset, root, derived_root(cfg))
    outside = [rel for rel in recs.image if not images.inside(root, rel)]  # links that lead out of the root
    if outside:
        if cfg.dataset.outside_links == "refuse":
            raise images.outside_error(root, outside[0])
        recs = recs[~recs.image.isin(set(outside))].reset_index(drop=True)
    if usable and cfg.detection.skip_unreadable:
        bad = set(unreadable(cfg).image)
        recs = recs[~recs.image.isin(bad)].reset_index(drop=True)
    return recs


def unreadable(cfg: Config) -> pd.DataFrame:
    """The original images no stage can decode (image, reason), found once and listed in
    `data/unreadable.csv`; every stage skips them. Only with `detection.skip_unreadable`:
    otherwise an unreadable image is an error naming it, in whichever stage meets it first."""
    out = unreadable_path(cfg)
    if not cfg.detection.skip_unreadable:
        return pd.DataFrame(columns=["image", "reason"])
    root = stage_generate(cfg)
    conf = {"dataset": to_dict(cfg.dataset)}
    if not finished(meta_path(out), conf, cfg.seed, [out], rebuild_stale=True):
        rows = []
        for rel in records(cfg, usable=False).image:
            try:
                images.read_image(root / rel)
            except (OSError, ValueError) as e:
                rows.append((rel, str(e)))
        write_csv(out, pd.DataFrame(rows, columns=["image", "reason"]),
                  make_meta("unreadable", conf, cfg.seed, fingerprint_files(root)))
    return pd.read_csv(out, keep_default_na=False)


def ground_truth(cfg: Config) -> pd.DataFrame | None:
    """Ground-truth face boxes when the dataset has them (the generated one does: it is generated first, so the
    answer never depends on whether an earlier stage happened to make it)."""
    path = stage_generate(cfg) / "face_boxes.csv" if not cfg.dataset.root else dataset_root(cfg) / "face_boxes.csv"
    return pd.read_csv(path) if path.is_file() else None


def stage_detect(cfg: Config, progress: bool = True) -> Path:
    """Stage 1: face detection over every usable image of the original dataset."""
    out = detections_path(cfg)
    conf = table.conf(cfg, "detect")
    if finished(meta_path(out), conf, cfg.seed, [out]):
        return out
    root = stage_generate(cfg)
    recs = records(cfg)
    d = cfg.detection
    # resumable: each DETECTION_PART images are a part file, kept across an interruption (same stamp only)
    with output_folder(out.parent / "parts", conf, cfg.seed) as parts:
        tables, run = [], None
        for k, start in enumerate(range(0, len(recs), DETECTION_PART)):
            part = parts / f"{k:05d}.csv"
            if not part.is_file():
                run = run if run is not None else detection.detector_from_config(d)  # once, if a part is missing
                found = detection.detect_dataset(root, recs.iloc[start:start + DETECTION_PART], d, run,
                                                 progress=progress)
                atomic_write_text(part, found.to_csv(index=False))
            tables.append(pd.read_csv(part))  # read back, so a fresh and a resumed run build the same table
        dets = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=detection.DETECTION_COLUMNS)
        write_csv(out, dets, make_meta("detection", conf, cfg.seed, fingerprint_files(root)))
        shutil.rmtree(parts)
    return out


def load_detections(cfg: Config) -> pd.DataFrame:
    """The detections table of stage 1."""
    return pd.read_csv(stage_detect(cfg, progress=False))


def stage_recall(cfg: Config) -> Path:
    """Stage 2: recall and precision against ground truth, with 95% intervals."""
    out = recall_path(cfg)
    stage_generate(cfg)
    truth_file = dataset_root(cfg) / "face_boxes.csv"
    sheet = project_path(cfg.recall.inspection_file) if cfg.recall.inspection_file else None
    conf = {**table.conf(cfg, "recall"),  # what it reads beside the config: edited, it is read again
            "truth_sha256": file_sha256(truth_file) if truth_file.is_file() else None,
            "inspection_sha256": file_sha256(sheet) if sheet is not None and sheet.is_file() else None}
    if finished(out, conf, cfg.seed, [out], rebuild_stale=True):
        return out
    dets = load_detections(cfg)
    truth = ground_truth(cfg)
    if truth is None:  # recall by inspection, as the paper did, on a random sample drawn by camera
        result = {"ground_truth": False}
        sample = recall.inspection_sample(records(cfg), cfg.recall.inspect, cfg.seed)
        write_csv(out.with_name("inspection_template.csv"), recall.inspection_template(sample, dets),
                  make_meta("recall", conf, cfg.seed, fingerprint_files(dataset_root(cfg))))
        if sheet is not None:
            if not sheet.is_file():
                raise FileNotFoundError(f"recall.inspection_file not found: {sheet}")
            r = recall.recall_from_inspection(pd.read_csv(sheet, keep_default_na=False), cfg.recall.confidence)
            result["inspection"] = {"k": r.k, "n": r.n, "value": r.value, "wilson": list(r.wilson),
                                    "clopper_pearson": list(r.clopper_pearson), "file": str(sheet)}
    else:
        result = {"ground_truth": True, **recall.evaluate(truth, dets, cfg.recall.iou, cfg.recall.confidence)}
    result["detection_rates"] = detection.detection_rates(records(cfg), dets).to_dict(orient="records")
    result["meta"] = make_meta("recall", conf, cfg.seed, fingerprint_files(dataset_root(cfg)))
    write_json(out, result)
    return out


def writer(cfg: Config) -> anonymize.Writer:
    """How the run's anonymized copy writes each image (`anonymization` section, the dataset's JPEG quality)."""
    return anonymize.Writer.of(cfg.anonymization, cfg.dataset.jpeg_quality)


COPY_OWN = {"manifest.json", "anonymization.meta.json"}  # beside the images, what the stage writes into a copy


def _copy_complete(out: Path) -> bool:
    """Whether an anonymized copy still holds exactly what its manifest lists, byte for byte. A file that is
    gone or changed (an original put back over its anonymized version) is removed and written again; a file
    the manifest does not list (planted in the copy) is refused by name, since a model would train on it."""
    files = read_json(out / "manifest.json")["files"]
    extra = sorted(files_in(out) - set(files) - COPY_OWN)
    if extra:
        raise ForeignFilesError(f"{out} holds files its manifest does not list: {first_names(extra)}; "
                                f"a copy labelled anonymized holds only what "
                                f"the stage wrote: move them out of it, then run again")
    intact = True
    for rel, sha in files.items():
        path = out / rel
        if path.is_file() and file_sha256(path) != sha:
            path.unlink()  # not what the stage wrote: written again from the original
        intact = intact and path.is_file()
    return intact


def stage_anonymize(cfg: Config, progress: bool = True) -> Path:
    """Stage 3: the anonymized copy of the dataset; returns its root.

    The copy holds only images that went through detection: the records' (unreadable ones left
    out), and the images no record lists (junk, `gt_bbox/`) only with `anonymization.outside_records:
    anonymize`, detected here first; otherwise they are left out. Beside them only the files the dataset's
    reader needs (`DatasetSpec.list_files`): never the generated set's identities or face boxes. The manifest
    lists what was left out. A copy missing one of its files is made again.
    """
    out = anon_root(cfg)
    conf = table.conf(cfg, "anonymize")
    meta = out / "anonymization.meta.json"
    if finished(meta, conf, cfg.seed, [anon_manifest(cfg)]) and _copy_complete(out):
        return out
    dets = load_detections(cfg)
    root, recs, a, d = dataset_root(cfg), records(cfg), cfg.anonymization, cfg.detection
    skip = cfg.dataset.outside_links == "skip"
    keep = list(recs.image)
    if a.outside_records == "anonymize":
        listed = set(keep) | set(unreadable(cfg).image)
        outside = [rel for rel in images.image_files(root, [] if skip else None) if rel not in listed]
    else:
        outside = []  # left out: anonymize_dataset lists them in the manifest
    if outside:
        extra = pd.DataFrame({"image": outside, "split": "outside_records", "pid": -1, "camid": 0})
        errors: list | None = [] if d.skip_unreadable else None
        found = detection.detect_dataset(root, extra, d, errors=errors, progress=progress)
        dets = pd.concat([dets, found], ignore_index=True)
        keep += sorted(set(outside) - {img for img, _ in errors or []})
    with output_folder(out, conf, cfg.seed):
        manifest = anonymize.anonymize_dataset(root, dets, out, writer(cfg), images=keep,
                                               lists=registry.dataset(cfg.dataset.name).list_files,
                                               notes={"outside_records": a.outside_records}, progress=progress,
                                               processes=a.processes, skip_outside=skip)
        write_json(meta, make_meta("anonymization", conf, cfg.seed, manifest["source_fingerprint"]))
    return out


def copy_digest(cfg: Config) -> str:
    """The anonymized copy's files and their bytes, as one digest (what a model trained on it depends on)."""
    return tree_digest(read_json(anon_manifest(cfg))["files"].items())


def stage_audit(cfg: Config, progress: bool = True) -> Path | None:
    """Stage 3 audit: every image as the copy would write it under each technique: faces the detector still
    finds, pixels changed outside the face boxes, and whether a swapped-in face still passes for its owner's."""
    if not cfg.anonymization.audit:
        return None
    out = audit_path(cfg)
    conf = table.conf(cfg, "audit")
    if finished(meta_path(out), conf, cfg.seed, audit_files(cfg), rebuild_stale=True):
        return out
    dets = load_detections(cfg)
    recs = records(cfg)
    a = cfg.anonymization
    writers = {t: replace(writer(cfg), technique=t, params=anonymize.technique_params(t, a))
               for t in anonymize.audited()}
    residual, per_image = anonymize.residual_audit(dataset_root(cfg), recs, dets,
                                                   detection.detector_from_config(cfg.detection), writers,
                                                   progress=progress, owners=dlib_faces.available())
    meta = make_meta("audit", conf, cfg.seed, fingerprint_files(dataset_root(cfg)))
    write_csv(audit_changes_path(cfg), per_image, meta)
    write_csv(audit_summary_path(cfg), anonymize.audit_summary(residual, per_image, recs), meta)
    write_csv(out, residual, meta)
    return out


def stage_train(cfg: Config, variant: str = "orig", model: str | None = None, progress: bool = True,
                seed: int | None = None) -> Path:
    """Stage 4: train one model (`training.model` by default, or one of `models`) on one variant, with
    one of its training seeds (the first by default); replicated runs differ only in this seed."""
    tcfg = trainings(cfg)[model or cfg.training.model]
    seed = tcfg.seeds[0] if seed is None else seed
    out = model_dir(cfg, variant, tcfg.model, seed)
    root = stage_generate(cfg) if variant == "orig" else stage_anonymize(cfg, progress)
    conf = table.conf(cfg, "train", tcfg.model, variant)
    if variant == "anon":  # trained on the copy's bytes: a copy written otherwise makes it stale
        conf["copy_sha256"] = copy_digest(cfg)
    return train_stamped(root, lambda: records(cfg, variant), out, tcfg, conf, seed, progress)


def train_stamped(root: Path, recs, out: Path, tcfg, conf: dict, seed: int, progress: bool = True) -> Path:
    """One training into `out` under its stamp (`conf`, seed, the data's fingerprint): done already when the
    stamp matches, resumed from a checkpoint of the same recipe and seed, else trained; `recs` gives the
    records (a callable, so a finished training reads nothing)."""
    meta = out / "model.pt.meta.json"
    if finished(meta, conf, seed, [out / "model.pt"]):
        return out
    with output_folder(out, conf, seed):  # a checkpoint resumes only under the same recipe and seed
        training.train(root, recs(), out, tcfg, seed, progress=progress)
        write_json(meta, make_meta("training", conf, seed, fingerprint_files(root),
                                   torch_threads=training.torch.get_num_threads()))
    return out


def stage_evaluate_model(cfg: Config, model: str | None = None, progress: bool = True,
                         seed: int | None = None, retrain: bool = True) -> Path:
    """Stage 5 for one training seed of one model: mAP / Rank-1 / mINP under orig_orig, orig_anon
    and anon_anon, each row carrying the seed. Without `retrain`, no model is trained on the anonymized
    copy and anon_anon is left out."""
    model = model or cfg.training.model
    seed = trainings(cfg)[model].seeds[0] if seed is None else seed
    out, queries_out = model_results_path(cfg, model, seed), model_query_ap_path(cfg, model, seed)
    stage_anonymize(cfg, progress)  # the copy orig_anon tests on
    conf = {**table.conf(cfg, "evaluate_model", model), "copy_sha256": copy_digest(cfg),
            **({} if retrain else {"retrain": False})}
    if finished(meta_path(out), conf, seed, [out, queries_out], rebuild_stale=True):
        return out
    protocols = tuple(evaluation.PROTOCOLS) if retrain else ("orig_orig", "orig_anon")
    dirs = {v: stage_train(cfg, v, model, progress, seed) for v in {evaluation.PROTOCOLS[p][0] for p in protocols}}
    roots = {v: variant_root(cfg, v) for v in VARIANTS}
    e, queries = cfg.evaluation, []
    res = evaluation.evaluate_protocols(dirs, roots, records(cfg), e, {"dataset": cfg.dataset.name,
                                        "technique": cfg.anonymization.technique}, trainings(cfg)[model].device,
                                        model in e.rerank_models, protocols, queries)
    res.insert(res.columns.get_loc("model") + 1, "seed", seed)
    fp = fingerprint_files(roots["orig"]) + ":" + fingerprint_files(roots["anon"])
    meta = make_meta("evaluation", conf, seed, fp)
    write_csv(queries_out, pd.concat(queries, ignore_index=True), meta)  # first: the results mark the job done
    write_csv(out, res, meta)
    return out


def stage_evaluate(cfg: Config, progress: bool = True) -> Path:
    """Stage 5: every model's protocol results, every training seed, in one table (rebuilt whenever
    a model's file changes)."""
    out = evaluation_path(cfg)
    parts = {f"{m}/seed{s}": stage_evaluate_model(cfg, m, progress, s) for m, t in trainings(cfg).items()
             for s in t.seeds}
    conf = table.conf(cfg, "evaluate")
    fp = tree_digest((m, file_sha256(p)) for m, p in parts.items())
    meta = meta_path(out)
    if out.is_file() and meta.is_file() and read_json(meta).get("data_fingerprint") == fp \
            and finished(meta, conf, cfg.seed, [out], rebuild_stale=True):
        return out
    results = pd.concat([pd.read_csv(p) for p in parts.values()], ignore_index=True)
    write_csv(out, results, make_meta("evaluation", conf, cfg.seed, fp))
    return out


def stage_statistics(cfg: Config, progress: bool = False) -> Path:
    """Stage 6: paired one-sided t-tests over the paper's Tables III-VII and over this run."""
    out = statistics_path(cfg)
    if cfg.statistics.results:  # a grid's table (workflow/grid.smk) lands in this chapter
        source = project_path(cfg.statistics.results)
        if not source.is_file():
            raise FileNotFoundError(f"statistics.results: results table not found: {source}")
        results_sha = file_sha256(source)
    else:
        source = stage_evaluate(cfg, progress=False)
        results_sha = fingerprint_files(evaluation_path(cfg).parent)
    run_results = pd.read_csv(source)
    run_results = run_results[run_results.technique == run_results.technique.iloc[0]]  # Table VIII rows apart
    conf = {**table.conf(cfg, "statistics"), "evaluation_sha": results_sha}
    if finished(out, conf, cfg.seed, [out], rebuild_stale=True):
        return out
    paper = statistics.load_paper_results()
    by = "dataset" if run_results.dataset.nunique() > 1 else None
    result = {"paper": statistics.test_all(paper, by="dataset", seed=cfg.seed).to_dict(orient="records"),
              "run": statistics.test_all(run_results, by=by, seed=cfg.seed,
                                         unit=statistics.unit_of(run_results)).to_dict(orient="records"),
              "alpha": cfg.statistics.alpha,
              "meta": make_meta("statistics", conf, cfg.seed, fingerprint_files(statistics.paper_results_path().parent))}
    write_json(out, result)
    return out


def collect_grid(units: list, grid_cfg: Config) -> Path:
    """A grid's stage 5 files in one table (`<run_dir>/results.csv`) and the paper's tests over it.

    `units` are `reidlib.grid.Unit`s. Reads only finished per-unit files (a missing one is an error
    naming it): the workflow has produced them, each in its own job. Statistics pool the main
    technique's rows across datasets.
    """
    out = grid_results_path(grid_cfg)
    parts = []
    for u in units:
        for m in u.models:
            for s in trainings(u.config)[m].seeds:
                p = model_results_path(u.config, m, s)
                if not p.is_file():
                    raise FileNotFoundError(f"evaluation result missing: {p} (run its evaluate job first)")
                parts.append((f"{u.dataset}/{u.technique}/{m}/seed{s}", p))
    fp = tree_digest((k, file_sha256(p)) for k, p in parts)
    table = pd.concat([pd.read_csv(p) for _, p in parts], ignore_index=True)
    meta = make_meta("grid", {"grid": to_dict(grid_cfg)}, grid_cfg.seed, fp)
    write_csv(out, table, meta)
    main = table[table.technique == grid_cfg.anonymization.technique]
    write_json(grid_statistics_path(grid_cfg),
               {"run": statistics.test_all(main, by="dataset", seed=grid_cfg.seed,
                                           unit=statistics.unit_of(main)).to_dict(orient="records"),
                "alpha": grid_cfg.statistics.alpha, "meta": meta})
    return out
