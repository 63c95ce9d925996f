"""The plain script a user would write instead of ``hpd-imaging run`` (baseline of benchmarks/real_size.py).

For every patient of a synthetic archive (its layout and baseline exam from ground_truth.json, as a user knows
their own folders): every exam's CT with SimpleITK ``ImageSeriesReader`` (GDCM's file sorting), its DICOM SEG
with highdicom (frames placed on the CT's slices through the source SOP Instance UIDs), and pyradiomics'
``RadiomicsFeatureExtractor(params).execute(image, mask)`` on each lesion (segment) of the baseline exam, with
the same parameter file as the pipeline. Patients are spread over a process pool of ``--workers`` processes
(what a user with several cores would do; a fair baseline for our Dask workers).

It checks nothing (no geometry rules, no tracking, no measurement, no report): it is the floor of what a user
needs to get the same radiomics table. Per-patient timings (load, radiomics) and the features go to --out as
JSON.

    python -m benchmarks.plain_script ARCHIVE --params pipelines/radiomics_ct.yaml --out p.json --workers 2
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any


def _load_exam(archive: Path, tp: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """SimpleITK image of the exam's CT and {segment label: uint8 mask array (z, y, x)} of its SEG."""
    import highdicom as hd
    import numpy as np
    import SimpleITK as sitk  # noqa: N813

    reader = sitk.ImageSeriesReader()
    files = reader.GetGDCMSeriesFileNames(str(archive / tp["ct_dir"]))
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()
    image = reader.Execute()
    masks: dict[str, Any] = {}
    if tp.get("mask_path"):
        sop_uids = [reader.GetMetaData(i, "0008|0018").strip().rstrip("\x00") for i in range(len(files))]
        seg = hd.seg.segread(archive / tp["mask_path"])
        numbers = list(seg.segment_numbers)
        arr = seg.get_pixels_by_source_instance(
            sop_uids, segment_numbers=numbers, combine_segments=False, assert_missing_frames_are_empty=True
        )
        for i, n in enumerate(numbers):
            masks[str(seg.get_segment_description(n).segment_label)] = np.ascontiguousarray(
                arr[..., i], dtype=np.uint8
            )
    return image, masks


def process_patient(archive: Path, patient: dict[str, Any], params: str) -> dict[str, Any]:
    """Load every exam, then pyradiomics on each baseline lesion; timings and features of one patient."""
    import SimpleITK as sitk  # noqa: N813
    from radiomics import featureextractor  # type: ignore[import-untyped]

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    t0 = time.perf_counter()
    exams = {tp["scan_date"]: _load_exam(archive, tp) for tp in patient["timepoints"]}
    load_s = time.perf_counter() - t0
    base = next(tp for tp in patient["timepoints"] if tp["role"] == "baseline")
    image, masks = exams[base["scan_date"]]
    t1 = time.perf_counter()
    extractor = featureextractor.RadiomicsFeatureExtractor(params)
    features: dict[str, dict[str, Any]] = {}
    for label, mask in masks.items():
        mask_img = sitk.GetImageFromArray(mask)
        mask_img.CopyInformation(image)
        out = extractor.execute(image, mask_img, label=1)
        features[label] = {k: _plain(v) for k, v in out.items() if not k.startswith("diagnostics_")}
    return {
        "patient_id": patient["patient_id"],
        "load_s": load_s,
        "radiomics_s": time.perf_counter() - t1,
        "n_exams": len(exams),
        "n_baseline_lesions": len(masks),
        "features": features,
    }


def _plain(value: Any) -> float:
    import numpy as np

    return float(np.asarray(value).reshape(-1)[0])


def run_archive(
    archive: Path, params: str, workers: int, patient_ids: list[str] | None = None
) -> dict[str, Any]:
    """Every patient of the archive (or of ``patient_ids``) on ``workers`` processes; wall time included."""
    truth = json.loads((archive / "ground_truth.json").read_text())
    patients = [p for p in truth["patients"] if patient_ids is None or p["patient_id"] in patient_ids]
    t0 = time.perf_counter()
    if workers <= 1:
        results = [process_patient(archive, p, params) for p in patients]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(
                pool.map(process_patient, [archive] * len(patients), patients, [params] * len(patients))
            )
    return {"wall_s": time.perf_counter() - t0, "workers": workers, "patients": results}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.plain_script",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("archive", type=Path)
    p.add_argument("--params", required=True, help="pyradiomics parameter file")
    p.add_argument("--out", type=Path, required=True, help="JSON with timings and features")
    p.add_argument("--workers", type=int, default=1)
    a = p.parse_args(argv)
    result = run_archive(a.archive, a.params, a.workers)
    a.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
