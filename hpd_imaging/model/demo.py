"""Rebuild the shipped demo model in models/ (SYNTHETIC DATA, NOT FOR CLINICAL USE).

    uv run python -m hpd_imaging.model.demo models/ --work /tmp/hpd_demo_work --workers 2

Every step is a public stage of this package, so the demo doubles as an end-to-end example:

1. ``hpd-imaging synth``: an image-level synthetic archive (:data:`DEMO_SYNTH`: 150 patients, seed 20240601,
   planted signal strength 2.0, 128 x 128 matrix, every other generator setting at its default);
2. ``hpd-imaging run`` (:func:`hpd_imaging.pipeline.run_study`) with ``pipelines/demo_training.yaml``: the
   default config except that radiomics uses ``radiomics_ct_original.yaml`` (the Original image type of
   ``radiomics_ct.yaml`` with the identical ``setting:`` block). WHY: LoG + Wavelet multiply the extraction
   time ~14-fold, and the Original features do not depend on them, so a model trained on this table runs
   unchanged under the default config (``hpd-imaging run ARCHIVE --out OUT --model models/...skops``);
   tests/model/test_demo_model.py checks both halves of that claim;
3. ``hpd-imaging evaluate`` (nested repeated CV, baselines, permutation check) on
   radiomics_patient.parquet + kinetics.csv (label ``hpd_champiat2017``) + clinical.csv (clinical baseline
   only: ``clinical_in_model: false``, the model is imaging-only);
4. ``hpd-imaging train`` on every evaluable patient, the evaluation's metrics copied into the card;
5. a cohort summary (phenotype x label table, failed patients) written next to the model.

Steps 1 and 2 are cached in ``--work`` (an archive is reused only when its ground_truth.json records the
same generator settings; the pipeline resumes finished patients), so an interrupted rebuild continues.
Deterministic for the same code and library versions (the archive bit for bit, the model up to
floating-point summation order).
Measured on a shared 2-core machine: synth 27 min (under heavy load), run 6-9 min, evaluate + train 2-3 min.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from hpd_imaging.errors import HpdImagingError
from hpd_imaging.model.features import read_table
from hpd_imaging.settings import REPO_PIPELINES
from hpd_imaging.settings.model import load_model_settings

log = logging.getLogger(__name__)

#: settings of the synthetic archive (hpd_imaging.synth.SynthSettings fields; the rest at their defaults)
DEMO_SYNTH: dict[str, Any] = {
    "n_patients": 150,
    "seed": 20240601,
    "signal_strength": 2.0,
    "matrix": 128,
}
DEMO_CONFIG = REPO_PIPELINES / "demo_training.yaml"
DEMO_NAME = "hpd_demo_synthetic"
REBUILD_COMMAND = "uv run python -m hpd_imaging.model.demo models/ --work /tmp/hpd_demo_work --workers 2"
SYNTH_COMMAND = (
    "uv run hpd-imaging synth ARCHIVE --patients {n_patients} --seed {seed} "
    "--signal-strength {signal_strength} --matrix {matrix}"
)
RUN_COMMAND = "uv run hpd-imaging run ARCHIVE --out RUN --config pipelines/demo_training.yaml"


def demo_synth_settings(workers: int = 1) -> Any:
    from hpd_imaging.synth import SynthSettings

    return SynthSettings(**DEMO_SYNTH, workers=workers)


def ensure_archive(archive: Path, workers: int = 1) -> dict[str, Any]:
    """Generate the demo archive, or reuse one whose ground_truth.json records the same settings."""
    from hpd_imaging.synth import generate_archive

    settings = demo_synth_settings(workers)
    expected = settings.model_dump(mode="json", exclude={"workers"})
    truth_path = archive / "ground_truth.json"
    if truth_path.is_file():
        truth: dict[str, Any] = json.loads(truth_path.read_text(encoding="utf-8"))
        found = truth.get("generator", {}).get("settings")
        if found != expected:
            raise HpdImagingError(
                f"{truth_path}: expected an archive generated with {expected}, got {found}; "
                "delete the work folder to regenerate it"
            )
        log.info("reusing synthetic archive %s", archive)
        return truth
    if archive.exists() and any(archive.iterdir()):
        log.warning("%s: incomplete archive (no ground_truth.json), regenerating", archive)
        shutil.rmtree(archive)
    log.info("generating synthetic archive %s (%s)", archive, DEMO_SYNTH)
    return generate_archive(archive, settings)


def cohort_summary(truth: dict[str, Any], kinetics: pd.DataFrame, features: pd.DataFrame,
                   failed: list[str], definition: str) -> dict[str, Any]:
    """Who is in the training table and why not: phenotype x label counts, failed and excluded patients."""
    column = f"hpd_{definition}"
    phen = pd.Series({p["patient_id"]: p["phenotype"] for p in truth["patients"]}, name="phenotype")
    labels = kinetics.set_index(kinetics["patient_id"].astype(str))[column]
    table = pd.DataFrame({"phenotype": phen}).join(labels.rename("label"))
    table["label"] = table["label"].fillna("no_kinetics_row (pipeline failed)")
    has_features = set(features["patient_id"].astype(str))
    cross = pd.crosstab(table["phenotype"], table["label"])
    evaluable = table[table["label"].isin(["hpd", "no_hpd"]) & table.index.isin(has_features)]
    return {
        "n_patients_generated": len(phen),
        "phenotypes": {str(k): int(v) for k, v in phen.value_counts().sort_index().items()},
        "labels": {str(k): int(v) for k, v in table["label"].value_counts().sort_index().items()},
        "phenotype_by_label": {
            str(p): {str(c): int(n) for c, n in row.items() if n} for p, row in cross.iterrows()
        },
        "pipeline_failed_patients": sorted(failed),
        "n_evaluable_with_features": len(evaluable),
        "n_hpd": int((evaluable["label"] == "hpd").sum()),
        "prevalence_hpd": round(float((evaluable["label"] == "hpd").mean()), 4) if len(evaluable) else None,
    }


def build_demo(out_dir: Path, work_dir: Path, *, workers: int = 2) -> dict[str, Path]:
    """Synth archive -> run_study -> evaluate -> train -> save; returns the written paths."""
    from hpd_imaging.model.evaluate import evaluate
    from hpd_imaging.model.persist import save_model
    from hpd_imaging.model.training import train
    from hpd_imaging.pipeline import run_study

    out_dir, work_dir = Path(out_dir), Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    archive, run_dir = work_dir / "archive", work_dir / "run"
    truth = ensure_archive(archive, workers)

    log.info("running the pipeline (%s) into %s", DEMO_CONFIG.name, run_dir)
    summary = run_study(archive, run_dir, DEMO_CONFIG, workers=workers)
    for name in ("radiomics_patient", "kinetics"):
        if name not in summary.outputs:
            raise HpdImagingError(
                f"{run_dir}: expected {name} output from run_study, got {sorted(summary.outputs)}"
            )
    features = read_table(run_dir / "radiomics_patient.parquet")
    kinetics = read_table(run_dir / "kinetics.csv")
    clinical = read_table(archive / "clinical.csv")
    settings = load_model_settings(DEMO_CONFIG)

    eval_dir = out_dir / f"{DEMO_NAME}.evaluation"
    if eval_dir.exists():
        shutil.rmtree(eval_dir)
    definition = settings.definition
    result = evaluate(features, kinetics, definition, settings, clinical=clinical, out_dir=eval_dir)
    model = train(features, kinetics, definition, settings, clinical=clinical, metrics=result.metrics)

    cohort = cohort_summary(truth, kinetics, features, summary.failed_patients, settings.definition)
    cohort_path = out_dir / f"{DEMO_NAME}.cohort.json"
    cohort_path.write_text(json.dumps(cohort, indent=2) + "\n", encoding="utf-8")
    notes = {
        "training_cohort": {
            "generator": "hpd-imaging synth (image-level synthetic CT archive, DICOM CT + SEG)",
            "synth_settings": {**DEMO_SYNTH, "other_settings": "hpd_imaging.synth.SynthSettings defaults"},
            "synth_command": SYNTH_COMMAND.format(**DEMO_SYNTH),
            "pipeline_command": RUN_COMMAND,
            "signal_mechanism": truth.get("signal_mechanism"),
            **cohort,
        },
        "features_from": "radiomics_patient.parquet of pipelines/demo_training.yaml "
        "(radiomics_ct_original.yaml: Original image type only, same settings as radiomics_ct.yaml, "
        "so identical to the default config's "
        "original_* columns)",
        "rebuild": REBUILD_COMMAND,
    }
    model_path, card_path = save_model(model, out_dir / f"{DEMO_NAME}.skops", synthetic=True, notes=notes)
    return {"model": model_path, "card": card_path, "evaluation": eval_dir, "cohort": cohort_path}


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - the documented rebuild command
    parser = argparse.ArgumentParser(
        prog="python -m hpd_imaging.model.demo", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("out_dir", type=Path, nargs="?", default=Path("models"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/hpd_demo_work"),
                        help="cache of the synthetic archive and the pipeline run")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    paths = build_demo(args.out_dir, args.work, workers=args.workers)
    for name, path in paths.items():
        print(f"wrote {name}: {path}")  # noqa: T201 - command-line entry point


if __name__ == "__main__":  # pragma: no cover
    main()
