"""``hpd-imaging measure CT MASK [--json]``: measure every lesion of one study (specs/measurement.md)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer

from hpd_imaging.commands._common import EXIT_USAGE, configure_logging, usage_errors

# the fields printed per lesion, in this order (issue #4); --json uses exactly these names
MEASURE_FIELDS: tuple[str, ...] = (
    "lesion_id",
    "label",
    "structure_type",
    "is_lesion",
    "organ",
    "is_lymph_node",
    "voxel_count",
    "volume_mm3",
    "mesh_volume_mm3",
    "longest_axial_diameter_mm",
    "short_axis_mm",
    "max_3d_diameter_mm",
    "surface_area_mm2",
    "sphericity",
    "lesion_rule",
)


def measure_study(
    ct_path: Path, mask_path: Path, *, split_components: bool = False, resample_labelmap: bool = False
) -> tuple[list[dict], list[str]]:
    """Load the CT and its masks, measure every non-empty structure of the file: (records, warnings).

    Every structure is reported, lesion or not, with its type (RT ROI Interpreted Type, segment category)
    and the rule that decided whether it is a lesion (io/structures.py); ``run`` keeps only the lesions.
    The file types are read from the content, not the names. The warnings include the readers' notes (stale
    references, contours off the slice planes) and the structures that give no voxel (a one-point ROI).
    """
    from hpd_imaging.errors import MaskError
    from hpd_imaging.io import LoaderSettings, load_ct, load_masks
    from hpd_imaging.io.structures import StructureProblem
    from hpd_imaging.measure import measure_lesion

    settings = LoaderSettings(labelmap_mismatch="resample" if resample_labelmap else "refuse")
    ct = load_ct(ct_path, settings)
    problems: list[StructureProblem] = []
    masks = load_masks(mask_path, ct, settings=settings, split_components=split_components, problems=problems)
    records: list[dict] = []
    warnings = [
        f"{p.message} ({'lesion' if p.is_lesion else 'not a lesion'}); not measured" for p in problems
    ]
    for mask in masks:
        warnings.extend(f"{mask_path}: {mask.label}: {note}" for note in mask.notes)
        if mask.is_empty:
            warnings.append(
                f"{mask_path}: lesion {mask.lesion_id or mask.label!r} is empty on this CT; skipped"
            )
            continue
        m = measure_lesion(mask)
        structure = {
            "structure_type": mask.structure_type,
            "is_lesion": mask.is_lesion,
            "lesion_rule": mask.lesion_rule,
        }
        records.append(
            {name: structure[name] if name in structure else getattr(m, name) for name in MEASURE_FIELDS}
        )
    if not records:
        raise MaskError(
            f"{mask_path}: expected at least one non-empty lesion mask on {ct_path}, got "
            f"{len(masks)} mask(s), all empty",
            path=str(mask_path),
        )
    return records, warnings


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if value < 1 else f"{value:.1f}"
    return str(value)


def register(app: typer.Typer) -> None:
    """Attach ``measure`` to the main app."""

    @app.command("measure")
    def measure(
        ct: Annotated[
            Path, typer.Argument(exists=True, help="CT: a DICOM series folder or a NIfTI/NRRD image.")
        ],
        mask: Annotated[
            Path, typer.Argument(exists=True, help="A DICOM SEG or RTSTRUCT file, or a label map.")
        ],
        as_json: Annotated[
            bool, typer.Option("--json", help="Print a JSON list of objects, not a table.")
        ] = False,
        split_components: Annotated[
            bool, typer.Option(help="One lesion per connected component of each mask.")
        ] = False,
        resample_labelmap: Annotated[
            bool,
            typer.Option(
                help="Resample a label map off the CT grid (nearest neighbour) instead of refusing."
            ),
        ] = False,
    ) -> None:
        """Measure every lesion of one study: RECIST axes, 3D diameter, volumes, surface, sphericity."""
        # quiet: configure_logging's console handler writes to stdout, which would corrupt --json; the
        # readers' warnings (mask.notes) are echoed to stderr below instead
        configure_logging("WARNING", quiet=True)
        with usage_errors():
            records, warnings = measure_study(
                ct, mask, split_components=split_components, resample_labelmap=resample_labelmap
            )
        for w in warnings:
            typer.secho(f"warning: {w}", err=True, fg=typer.colors.YELLOW)
        if as_json:
            clean = [
                {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}
                for r in records
            ]
            typer.echo(json.dumps(clean, indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{len(records)} lesion(s): {mask.name} on {ct.name}")
        for name in MEASURE_FIELDS:
            left = name in ("lesion_id", "label", "organ", "structure_type", "lesion_rule")
            table.add_column(name, justify="left" if left else "right")
        for r in records:
            table.add_row(*(_fmt(r[name]) for name in MEASURE_FIELDS))
        Console(width=250).print(table)


__all__ = ["EXIT_USAGE", "MEASURE_FIELDS", "measure_study", "register"]
