"""Rebuild the shipped demo model in models/ (synthetic, not for clinical use).

    uv run python -m hpd_imaging.model.demo models/

The demo is trained on the FEATURE-LEVEL synthetic cohort of :mod:`hpd_imaging.model.synthetic` (not on
radiomics extracted from an image-level ``hpd-imaging synth`` archive: at the time of writing the image
pipeline from a synthetic archive to radiomics_patient features was not yet wired). The card says so.
It runs the full evaluation (default settings: 5 x 5 nested CV, baselines, 5 permutations), then trains on
all patients with the evaluation's metrics copied into the card. Deterministic for a given seed and
library versions.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

from hpd_imaging.model.evaluate import evaluate
from hpd_imaging.model.persist import save_model
from hpd_imaging.model.settings import ModelSettings
from hpd_imaging.model.synthetic import make_feature_cohort
from hpd_imaging.model.training import train

log = logging.getLogger(__name__)

DEMO_COHORT: dict[str, Any] = {
    "n_patients": 120,
    "prevalence": 0.15,
    "signal_strength": 1.5,
    "n_signal": 5,
    "n_redundant": 3,
    "n_noise": 30,
    "not_evaluable_fraction": 0.1,
    "seed": 20240601,
}
DEMO_NAME = "hpd_demo_synthetic_features.skops"


def build_demo(out_dir: Path, settings: ModelSettings | None = None) -> dict[str, Path]:
    """Write the demo model, its card and its evaluation metrics.json into ``out_dir``."""
    settings = settings or ModelSettings(clinical_in_model=False)
    cohort = make_feature_cohort(**DEMO_COHORT)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        result = evaluate(
            cohort.features,
            cohort.kinetics,
            settings.definition,
            settings,
            clinical=cohort.clinical,
            out_dir=Path(tmp),
        )
        metrics_path = out_dir / "hpd_demo_synthetic_features.metrics.json"
        metrics_path.write_text((Path(tmp) / "metrics.json").read_text(encoding="utf-8"), encoding="utf-8")
    model = train(
        cohort.features,
        cohort.kinetics,
        settings.definition,
        settings,
        clinical=cohort.clinical,
        metrics=result.metrics,
    )
    notes = {
        "training_cohort": {
            "generator": "hpd_imaging.model.synthetic.make_feature_cohort (feature-level, no images)",
            **DEMO_COHORT,
        },
        "rebuild": "uv run python -m hpd_imaging.model.demo models/",
    }
    model_path, card_path = save_model(model, out_dir / DEMO_NAME, synthetic=True, notes=notes)
    return {"model": model_path, "card": card_path, "metrics": metrics_path}


if __name__ == "__main__":  # pragma: no cover - the documented rebuild command
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    paths = build_demo(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("models"))
    for name, path in paths.items():
        print(f"wrote {name}: {path}")  # noqa: T201 - command-line entry point
