"""``hpd-imaging radiomics CT MASK``: pyradiomics features of every lesion of one study (row per lesion)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hpd_imaging.commands._common import EXIT_OK, EXIT_SOME_FAILED, configure_logging, usage_errors


def register(app: typer.Typer) -> None:
    """Attach the ``radiomics`` command to the main app."""

    @app.command("radiomics")
    def radiomics_command(
        ct: Annotated[Path, typer.Argument(help="CT: a folder of DICOM slices, or a NIfTI/NRRD image.")],
        mask: Annotated[Path, typer.Argument(help="Masks: DICOM SEG, RTSTRUCT or NIfTI/NRRD label map.")],
        params: Annotated[Path | None, typer.Option(
            "--params", "-p", help="pyradiomics parameter file. Default: pipelines/radiomics_ct.yaml.",
        )] = None,
        out: Annotated[Path | None, typer.Option(
            "--out", "-o", help="Feature CSV (row per lesion and region). Default: stdout.")] = None,
        ring_mm: Annotated[list[float] | None, typer.Option(
            "--ring-mm", help="Add a peritumoral ring of this width in mm (repeatable).")] = None,
        patient_id: Annotated[str | None, typer.Option(help="Value of the patient_id column.")] = None,
        ibsi_tags: Annotated[bool, typer.Option(
            "--ibsi-tags", help="Name feature columns by IBSI feature tag (stat_mean, cm_joint_avg_3D_avg, "
                                "morph_volume, ivh_v10, ...) instead of pyradiomics / MIRP names.")] = False,
        engine: Annotated[str | None, typer.Option(
            "--engine", help="pyradiomics, mirp or both (default: the parameter file's engine, else "
                             "pyradiomics); mirp needs an ibsi: section (pipelines/ibsi/ct_config_c.yaml).",
        )] = None,
        workers: Annotated[int, typer.Option("--workers", "-j", min=1, help="Processes over lesions.")] = 1,
        log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "WARNING",
    ) -> None:
        """Radiomics features per lesion: pyradiomics (columns named as pyradiomics names them, e.g.
        original_glcm_Contrast) or, with an IBSI parameter file (pipelines/ibsi/ct_config_a..e.yaml), IBSI-
        conformant features computed by MIRP; --ibsi-tags names columns by IBSI feature tag.
        Writes FILE.csv, FILE.diagnostics.csv and, when a lesion fails,
        FILE.errors.csv; exit code 1 when some lesion failed, 2 for bad input or settings."""
        configure_logging(log_level)
        from hpd_imaging.io import load_ct, load_masks
        from hpd_imaging.radiomics import extract_lesion_features, load_params
        from hpd_imaging.settings import REPO_PIPELINES, resolve_resource

        with usage_errors():
            params_path = resolve_resource(params) if params else REPO_PIPELINES / "radiomics_ct.yaml"
            radiomics_params = load_params(params_path)  # validated before the images are read
            if engine is not None:
                radiomics_params = radiomics_params.with_engine(engine)
            image = load_ct(ct)
            masks = load_masks(mask, image)
            result = extract_lesion_features(image, masks, radiomics_params, ring_widths_mm=ring_mm or (),
                                             patient_id=patient_id, workers=workers, ibsi_tags=ibsi_tags)
        if out is None:
            typer.echo(result.features.to_csv(index=False), nl=False)
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            result.features.to_csv(out, index=False)
            result.diagnostics.to_csv(out.with_suffix(".diagnostics.csv"), index=False)
            if result.errors:
                result.errors_frame().to_csv(out.with_suffix(".errors.csv"), index=False)
        for lesion_id, message in result.errors:
            typer.secho(f"lesion {lesion_id}: {message}", err=True, fg=typer.colors.YELLOW)
        raise typer.Exit(EXIT_SOME_FAILED if result.errors else EXIT_OK)
