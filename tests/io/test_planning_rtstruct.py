"""A treatment-planning RTSTRUCT (Eclipse-like: BODY, an organ at risk, point markers, the CTV) on a head CT.

Only GTV/CTV are lesions; the 6.9-litre BODY, the brainstem and the markers are structures, not lesions; a
lesion ROI whose only contour is a single point is an error for that lesion, never a measurement of 0. The
slow test runs `hpd-imaging run` with default settings on a 512 x 512 x 90 head CT and bounds its memory.
"""

from __future__ import annotations

import resource
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from io_dicom_writers import write_ct_series, write_rtstruct

from hpd_imaging.io import load_ct, load_masks
from hpd_imaging.io.structures import StructureProblem

REPO = Path(__file__).resolve().parents[2]
FOR_UID = "1.2.826.0.1.3680043.8.498.77"


def _circle(cx: float, cy: float, r: float, z: float, n: int = 96) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t), np.full(n, z)], axis=1)


def _planning_case(
    folder: Path, *, matrix: int, pixel_mm: float, n_slices: int, slice_mm: float
) -> tuple[Path, Path]:
    half = matrix * pixel_mm / 2
    zs = [n * slice_mm for n in range(n_slices)]
    yy, xx = np.mgrid[0:matrix, 0:matrix]
    x = -half + pixel_mm * xx
    y = -half + pixel_mm * yy
    inside = (x**2 + y**2) <= 100.0**2

    def pixels(n: int) -> np.ndarray:
        return np.where(inside, 1024 + 30, 0).astype(np.int16)  # water-like head, air outside (stored)

    ct_dir = folder / "CT"
    write_ct_series(
        ct_dir,
        [(-half, -half, z) for z in zs],
        pixels,
        pixel_spacing=(pixel_mm, pixel_mm),
        frame_of_reference_uid=FOR_UID,
    )
    body = [_circle(0, 0, 100.0, z) for z in zs[1:-1]]
    brainstem = [_circle(0, 40, 12.0, z) for z in zs[n_slices // 3 : 2 * n_slices // 3]]
    markers = [
        [("POINT", np.array([[60.0 * np.cos(a), 60.0 * np.sin(a), zs[n_slices // 2]]]))] for a in range(7)
    ]
    mid = zs[n_slices // 2]
    ctv = [
        _circle(-30, -20, float(np.sqrt(max(20.0**2 - (z - mid) ** 2, 0))), z)
        for z in zs
        if abs(z - mid) < 18
    ]
    gtv_point = [np.array([[-30.0, -20.0, mid]])]  # a GTV whose only "contour" is a single point
    rois = [("BODY", body), ("Brainstem", brainstem)]
    rois += [(f"Marker{k + 1}", m) for k, m in enumerate(markers)]
    rois += [("CTV_high", ctv), ("GTV_point", gtv_point)]
    types = ["EXTERNAL", "ORGAN"] + ["MARKER"] * 7 + ["CTV", "GTV"]
    rs = write_rtstruct(folder / "RS.dcm", FOR_UID, rois, interpreted_types=types)
    return ct_dir, rs


def test_only_gtv_ctv_are_lesions_and_a_one_point_gtv_is_a_problem(tmp_path: Path) -> None:
    ct_dir, rs = _planning_case(tmp_path, matrix=96, pixel_mm=2.5, n_slices=24, slice_mm=5.0)
    ct = load_ct(ct_dir)
    problems: list[StructureProblem] = []
    masks = load_masks(rs, ct, problems=problems)
    by_name = {m.label: m for m in masks}
    # every structure that has an area is read, with its type; the markers (points) have none
    assert set(by_name) == {"BODY", "Brainstem", "CTV_high"}
    assert [m.label for m in masks if m.is_lesion] == ["CTV_high"]
    assert (
        by_name["BODY"].structure_type == "EXTERNAL"
        and "EXTERNAL is not a lesion type" in by_name["BODY"].lesion_rule
    )
    assert by_name["Brainstem"].structure_type == "ORGAN" and not by_name["Brainstem"].is_lesion
    assert by_name["CTV_high"].lesion_rule == "RT ROI Interpreted Type CTV is a lesion type"
    # BODY: a 100 mm radius cylinder over 22 slices of 5 mm ~ 6.9 litres (pixel-centre fill within 1 %)
    body_mm3 = by_name["BODY"].voxel_count * ct.geometry.voxel_volume_mm3
    assert body_mm3 == pytest.approx(np.pi * 100.0**2 * 22 * 5.0, rel=0.01)
    lesion_problems = [p for p in problems if p.is_lesion]
    assert len(lesion_problems) == 1 and len(problems) == 8  # 7 markers + the one-point GTV
    (gtv,) = lesion_problems
    assert "ROI 11 (GTV_point, GTV)" in gtv.message and "closed planar contour of >= 3 points" in gtv.message
    assert "CLOSED_PLANAR with < 3 points" in gtv.value


@pytest.mark.slow
def test_planning_rtstruct_run_default_settings_only_ctv_and_bounded_memory(tmp_path: Path) -> None:
    study = tmp_path / "study" / "P1"
    _planning_case(study, matrix=512, pixel_mm=0.6, n_slices=90, slice_mm=2.5)
    out = tmp_path / "out"
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "hpd-imaging"),
            "run",
            str(tmp_path / "study"),
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert proc.returncode == 1, proc.stderr  # the one-point GTV is an error row
    lesions = pd.read_csv(out / "lesions.csv")
    assert list(lesions["label"]) == ["CTV_high"]
    errors = pd.read_csv(out / "errors.csv", dtype=str, keep_default_na=False)
    failing = errors[errors.severity == "error"]
    assert len(failing) == 1 and "GTV_point" in failing.iloc[0]["message"]
    # largest single process of the run (Dask workers included, RUSAGE_CHILDREN is a maximum, not a sum)
    assert max(peak_kib, before) < 4 * 1024 * 1024, f"peak RSS {peak_kib / 1024:.0f} MiB"


def test_series_table_lists_every_structure_with_its_type_and_rule(tmp_path: Path) -> None:
    from hpd_imaging.archive import scan_archive

    _planning_case(tmp_path / "P1", matrix=32, pixel_mm=8.0, n_slices=12, slice_mm=10.0)
    (row,) = scan_archive(tmp_path).series_table().to_dict("records")
    structures = row["structures"].split("; ")
    assert len(structures) == 11
    assert (
        "RS.dcm: BODY [EXTERNAL]: not a lesion (RT ROI Interpreted Type EXTERNAL is not a lesion type)"
        in structures
    )
    assert "RS.dcm: CTV_high [CTV]: lesion (RT ROI Interpreted Type CTV is a lesion type)" in structures
    assert sum(s.startswith("RS.dcm: Marker") and "[MARKER]: not a lesion" in s for s in structures) == 7
