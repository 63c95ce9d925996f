"""IBSI 1 CT radiomics phantom: reading the phantom, running a configuration, judging each feature.

Shared by tests/radiomics/test_radiomics_ibsi_ct.py and by the table of docs/ibsi_compliance.md. Run as a
script (``uv run python tests/radiomics/ibsi_ct_support.py``) to print the per-configuration result and
rewrite the stored match table ``ibsi_ct_match.csv`` (then review the diff: the tests assert it feature by
feature).

Which reference rows count as features: tags with an IBSI 1 feature-family prefix (``morph_``, ``stat_``,
``cm_``, ...) and a finite reference value. Rows without a family prefix, and the ``int_mask_*`` /
``morph_mask_*`` rows, are the manual's diagnostics of the preprocessing steps, not features; rows with no
reference value (``morph_vol_dens_ombb``, ``ivh_auc``, ...) had no consensus.

Match rule (as the IBSI reference values are published: 3 significant digits and a tolerance): our value, or
our value rounded to 3 significant digits, is within the tolerance of the reference (MIRP's own IBSI test
rule).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from hpd_imaging.domain import CtImage, LesionMask
from hpd_imaging.settings import REPO_PIPELINES

HERE = Path(__file__).parent
MATCH_TABLE = HERE / "ibsi_ct_match.csv"
#: configurations with IBSI reference values in ../shared/data/ibsi_ct; those of D and E (IBSI manual) are
#: kept in the match table itself (columns reference, tolerance)
REFERENCED = ("a", "b", "c")
ALL = ("a", "b", "c", "d", "e")
#: features whose status is "approximate" (neither asserted nor counted as a match); empty since Moran's I
#: and Geary's C are computed exactly (hpd_imaging.radiomics.ibsi.moran_geary), not by MIRP's Monte Carlo
APPROXIMATED: frozenset[str] = frozenset()
FAMILIES = ("morph_", "loc_", "stat_", "ih_", "ivh_", "cm_", "rlm_", "szm_", "dzm_", "ngt_", "ngl_")
PHANTOM_DICOM = ("ibsi_1_ct_radiomics_phantom", "dicom")


@dataclass(frozen=True)
class Reference:
    value: float
    tolerance: float


def read_phantom(root: Path) -> tuple[CtImage, LesionMask]:
    """The phantom's CT and its GTV, read with hpd-imaging's own DICOM CT and RTSTRUCT readers."""
    from hpd_imaging.io import load_ct, load_masks

    dicom = root.joinpath(*PHANTOM_DICOM)
    ct = load_ct(dicom / "image")
    rtstruct = sorted((dicom / "mask").glob("*.dcm"))
    masks = load_masks(rtstruct[0], ct)
    assert len(masks) == 1, f"expected one ROI (GTV-1) in the phantom's RTSTRUCT, got {len(masks)}"
    return ct, masks[0]


def read_reference(path: Path, features_only: bool = True) -> dict[str, Reference]:
    out: dict[str, Reference] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f, delimiter=";"):
            tag, value = row["tag"], row["reference value"]
            if features_only and (not tag.startswith(FAMILIES) or "_mask_" in tag):
                continue
            if value in ("", "NA") or not math.isfinite(float(value)):
                if features_only:
                    continue
                out[tag] = Reference(math.nan, math.nan)
                continue
            out[tag] = Reference(float(value), float(row["tolerance"]))
    return out


def round_sig(x: float, digits: int = 3) -> float:
    return x if x == 0 or not math.isfinite(x) else round(x, digits - 1 - math.floor(math.log10(abs(x))))


def within(ours: float | None, ref: Reference) -> bool:
    if ours is None or not math.isfinite(ours):
        return False
    slack = 1e-9 * max(1.0, abs(ref.value))
    limit = ref.tolerance + slack
    return abs(ours - ref.value) <= limit or abs(round_sig(ours) - ref.value) <= limit


def run_configuration(ct: CtImage, lesion: LesionMask, config: str) -> dict[str, float | None]:
    """Features of the phantom GTV under ``pipelines/ibsi/ct_config_<config>.yaml``, by IBSI tag."""
    from hpd_imaging.radiomics import extract_lesion_features, load_params

    params = load_params(REPO_PIPELINES / "ibsi" / f"ct_config_{config}.yaml")
    result = extract_lesion_features(ct, [lesion], params, ibsi_tags=True)
    assert result.errors == [], result.errors
    row = result.features.iloc[0]
    return {str(k): (None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v))
            for k, v in row.items() if str(k).startswith(FAMILIES)}


def judge(ours: dict[str, float | None], reference: dict[str, Reference]) -> dict[str, bool]:
    return {tag: within(ours.get(tag), ref) for tag, ref in reference.items()}


def stored_references(config: str) -> dict[str, Reference]:
    """Reference values kept in the match table (D and E: the IBSI manual's, not in ../shared/data)."""
    out: dict[str, Reference] = {}
    with open(MATCH_TABLE, newline="") as f:
        for row in csv.DictReader(f):
            if row["configuration"] == config:
                out[row["tag"]] = Reference(float(row["reference"]), float(row["tolerance"]))
    return out


def read_match_table() -> dict[str, dict[str, str]]:
    """configuration -> tag -> status (``match``, ``deviates`` or ``approximate``)."""
    table: dict[str, dict[str, str]] = {}
    with open(MATCH_TABLE, newline="") as f:
        for row in csv.DictReader(f):
            table.setdefault(row["configuration"], {})[row["tag"]] = row["status"]
    return table


def _main() -> None:  # pragma: no cover - developer tool
    """Rewrite ibsi_ct_match.csv. Optional argument: a folder with ibsi_1_chest_config_{d,e}.csv (the IBSI
    manual's D and E reference values, e.g. from oncoray/mirp test/data/ibsi_1_reference_values)."""
    import os
    import sys

    root = Path(os.environ.get("HPD_SHARED_DATA") or HERE.parents[2] / "shared" / "data") / "ibsi_ct"
    de_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    ct, lesion = read_phantom(root)
    rows = []
    stored = read_match_table() if MATCH_TABLE.exists() else {}
    for config in ALL:
        if config in REFERENCED:
            reference = read_reference(root / "reference_values" / f"ibsi_1_chest_config_{config}.csv")
        elif de_dir is not None:
            reference = read_reference(de_dir / f"ibsi_1_chest_config_{config}.csv")
        else:
            reference = stored_references(config)
        ours = run_configuration(ct, lesion, config)
        verdict = judge(ours, reference)
        n = sum(ok for tag, ok in verdict.items() if tag not in APPROXIMATED)
        print(f"config {config.upper()}: {n} / {len(verdict)} = {n / len(verdict):.1%}")
        for tag, ok in verdict.items():
            ref = reference[tag]
            value = ours.get(tag)
            rows.append({"configuration": config, "tag": tag, "reference": f"{ref.value:.6g}",
                         "tolerance": f"{ref.tolerance:.6g}", "ours": "" if value is None else f"{value:.6g}",
                         "status": "approximate" if tag in APPROXIMATED else "match" if ok else "deviates"})
            if not ok:
                print(f"  {tag}: ours {value}, reference {ref.value} +- {ref.tolerance}")
    del stored
    with open(MATCH_TABLE, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    _main()
