"""``hpd-imaging train | evaluate | predict``: the HPD risk model from a patient-level feature table.

Thin wrappers around :mod:`hpd_imaging.model`; heavy imports (scikit-learn, skops) live inside the commands so
that ``hpd-imaging --help`` stays fast. Settings: ``--config`` YAML (its ``model:`` section; default
pipelines/default.yaml) with the options below overriding it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

FeaturesOpt = Annotated[
    Path,
    typer.Option(
        "--features", help="Patient feature table (.parquet or .csv): patient_id + numeric columns."
    ),
]
LabelsOpt = Annotated[Path, typer.Option("--labels", help="kinetics.csv with the hpd_<definition> column.")]
ClinicalOpt = Annotated[
    Path | None,
    typer.Option(
        "--clinical", help="clinical.csv: covariates (age, n_metastatic_sites, ldh_above_uln, ...)."
    ),
]
DefinitionOpt = Annotated[
    str | None,
    typer.Option("--definition", help="HPD definition key, e.g. champiat2017 (default: settings)."),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="YAML with a 'model:' section (default: pipelines/default.yaml)."),
]
ClassifierOpt = Annotated[
    str | None,
    typer.Option(
        "--classifier",
        help="logistic_l1 | logistic_elasticnet | logistic_l2 | random_forest | gradient_boosting | svm.",
    ),
]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Random seed of every split and estimator.")]
LogOpt = Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="Only warnings and errors.")]


def _settings(config: Path | None, **overrides: Any) -> Any:
    from hpd_imaging.settings.model import load_model_settings

    return load_model_settings(config, overrides)


def _read_inputs(features: Path, labels: Path | None, clinical: Path | None) -> tuple[Any, Any, Any]:
    from hpd_imaging.model.features import read_table

    return (
        read_table(features),
        read_table(labels) if labels is not None else None,
        read_table(clinical) if clinical is not None else None,
    )


def register(app: typer.Typer) -> None:
    """Attach ``train``, ``evaluate`` and ``predict`` to the main app."""

    @app.command("train")
    def train(
        features: FeaturesOpt,
        labels: LabelsOpt,
        out: Annotated[
            Path, typer.Option("--out", help="MODEL.skops to write (card: MODEL.skops.card.json).")
        ],
        definition: DefinitionOpt = None,
        clinical: ClinicalOpt = None,
        config: ConfigOpt = None,
        classifier: ClassifierOpt = None,
        seed: SeedOpt = None,
        metrics: Annotated[
            Path | None,
            typer.Option(
                "--metrics", help="metrics.json of `hpd-imaging evaluate` on the same inputs, for the card."
            ),
        ] = None,
        synthetic: Annotated[
            bool,
            typer.Option(
                "--synthetic", help="Mark the card: trained on synthetic data, not for clinical use."
            ),
        ] = False,
        log_level: LogOpt = "INFO",
        quiet: QuietOpt = False,
    ) -> None:
        """Train the HPD risk model on every evaluable patient; save it (skops) with a JSON model card."""
        from hpd_imaging.commands._common import configure_logging, usage_errors

        configure_logging(log_level, quiet=quiet)
        with usage_errors():
            import json

            from hpd_imaging.errors import ModelError
            from hpd_imaging.model import save_model
            from hpd_imaging.model import train as train_model

            settings = _settings(config, definition=definition, classifier=classifier, seed=seed)
            feats, labs, clin = _read_inputs(features, labels, clinical)
            metrics_data = None
            if metrics is not None:
                try:
                    metrics_data = json.loads(metrics.read_text(encoding="utf-8"))
                except (OSError, json.JSONDecodeError) as exc:
                    raise ModelError(
                        f"{metrics}: cannot read metrics.json: {exc}", path=str(metrics)
                    ) from exc
                if metrics_data.get("label_definition") != settings.definition:
                    raise ModelError(
                        f"{metrics}: expected metrics of definition {settings.definition!r}, got "
                        f"{metrics_data.get('label_definition')!r}",
                        path=str(metrics),
                    )
            model = train_model(
                feats, labs, settings.definition, settings, clinical=clin, metrics=metrics_data
            )
            notes = {"inputs": {"features": str(features), "labels": str(labels), "clinical": str(clinical)}}
            model_path, card_path = save_model(model, out, synthetic=synthetic, notes=notes)
        if not quiet:
            s = model.training_summary
            typer.echo(
                f"trained on {s['n_patients']} patient(s) ({s['n_hpd']} hpd, {s['n_excluded_not_evaluable']} "
                f"not evaluable left out); threshold {model.threshold:.3f} ({model.threshold_rule})"
            )
            typer.echo(f"wrote {model_path}\nwrote {card_path}")

    @app.command("evaluate")
    def evaluate(
        features: FeaturesOpt,
        labels: LabelsOpt,
        out: Annotated[Path, typer.Option("--out", help="Output folder (metrics.json, plots, tables).")],
        definition: DefinitionOpt = None,
        clinical: ClinicalOpt = None,
        config: ConfigOpt = None,
        classifier: ClassifierOpt = None,
        seed: SeedOpt = None,
        outer_splits: Annotated[int | None, typer.Option("--outer-splits", help="Outer CV folds.")] = None,
        outer_repeats: Annotated[
            int | None, typer.Option("--outer-repeats", help="Outer CV repeats.")
        ] = None,
        n_permutations: Annotated[
            int | None, typer.Option("--n-permutations", help="Label-permutation runs (0 = skip).")
        ] = None,
        n_jobs: Annotated[
            int | None, typer.Option("--n-jobs", help="Outer folds fitted in parallel.")
        ] = None,
        log_level: LogOpt = "INFO",
        quiet: QuietOpt = False,
    ) -> None:
        """Nested repeated stratified CV with CIs, clinical/volume baselines and a label-permutation check."""
        from hpd_imaging.commands._common import configure_logging, usage_errors

        configure_logging(log_level, quiet=quiet)
        with usage_errors():
            from hpd_imaging.model import evaluate as evaluate_model

            settings = _settings(
                config,
                definition=definition,
                classifier=classifier,
                seed=seed,
                outer_splits=outer_splits,
                outer_repeats=outer_repeats,
                n_permutations=n_permutations,
                n_jobs=n_jobs,
            )
            feats, labs, clin = _read_inputs(features, labels, clinical)
            result = evaluate_model(feats, labs, settings.definition, settings, clinical=clin, out_dir=out)
        if not quiet:
            from hpd_imaging.model.metrics import format_estimate

            m = result.metrics

            def fmt(entry: dict[str, Any] | None) -> str:
                return format_estimate(entry, digits=3, missing="n/a")

            typer.echo(
                f"{m['n_patients']} patient(s), {m['n_hpd']} hpd, "
                f"{m['n_excluded_not_evaluable']} not evaluable "
                f"left out; AUC {fmt(m.get('auc'))}"
            )
            for name, base in m.get("baselines", {}).items():
                typer.echo(
                    f"baseline {name}: AUC {fmt(base.get('auc')) if 'auc' in base else base.get('skipped')}"
                )
            perm = m.get("permutation", {})
            if "auc" in perm:
                typer.echo(f"permuted labels: AUC {fmt(perm['auc'])}")
            typer.echo(f"wrote {len(result.files)} file(s) to {out}")

    @app.command("predict")
    def predict(
        model: Annotated[Path, typer.Option("--model", help="MODEL.skops (with MODEL.skops.card.json).")],
        features: FeaturesOpt,
        out: Annotated[Path, typer.Option("--out", help="predictions.csv to write.")],
        labels: Annotated[
            Path | None, typer.Option("--labels", help="kinetics.csv: its label is written side by side.")
        ] = None,
        clinical: ClinicalOpt = None,
        log_level: LogOpt = "INFO",
        quiet: QuietOpt = False,
    ) -> None:
        """Per patient: calibrated HPD risk, class at the model's threshold, and the kinetics label."""
        from hpd_imaging.commands._common import configure_logging, usage_errors

        configure_logging(log_level, quiet=quiet)
        with usage_errors():
            from hpd_imaging.model import load_model
            from hpd_imaging.model import predict as predict_model

            trained = load_model(model)
            feats, labs, clin = _read_inputs(features, labels, clinical)
            table = predict_model(trained, feats, labs, clinical=clin)
            out.parent.mkdir(parents=True, exist_ok=True)
            table.to_csv(out, index=False)
        if not quiet:
            n_hpd = int((table["predicted_hpd"] == "hpd").sum())
            typer.echo(f"{len(table)} patient(s), {n_hpd} predicted hpd at threshold {trained.threshold:.3f}")
            typer.echo(f"wrote {out}")
