"""Cold vs warm scan_archive timing on a synthetic folder of small DICOM files (not collected by pytest).

    uv run python tests/archive/bench_scan_archive.py [N_PATIENTS] [SLICES] [OUT_DIR]

Writes N_PATIENTS x 2 exams x (SLICES CT slices + 1 SEG) into OUT_DIR (default /tmp/hpd_archive_bench; data is
never written into the repository), then times: a scan without cache, a cold scan that fills the SQLite
header index, a warm scan, and a warm scan after touching 10 files. Prints one JSON object.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from archive_factory import ct_slice, seg, write
from pydicom.uid import generate_uid

from hpd_imaging.archive import scan_archive


def build(root: Path, n_patients: int, n_slices: int) -> int:
    n = 0
    for p in range(n_patients):
        pid = f"BENCH{p:04d}"
        for date in ("20240105", "20240410"):
            suid, for_uid, study = generate_uid(), generate_uid(), generate_uid()
            kw = dict(patient_id=pid, study_date=date, series_uid=suid, for_uid=for_uid, study_uid=study)
            folder = root / pid / date / "CT"
            for i in range(n_slices):
                write(ct_slice(z=float(i), **kw), folder / f"{i:04d}.dcm")  # type: ignore[arg-type]
            mask = seg(
                ref_series_uid=suid, frame_z=[1.0, 2.0], patient_id=pid, for_uid=for_uid, study_date=date
            )
            write(mask, root / pid / date / "SEG" / "seg.dcm")
            n += n_slices + 1
    return n


def main() -> None:
    n_patients = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    n_slices = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    root = Path(sys.argv[3]) if len(sys.argv) > 3 else Path("/tmp/hpd_archive_bench")
    shutil.rmtree(root, ignore_errors=True)
    archive_dir, out = root / "archive", root / "out"
    t = time.perf_counter()
    n_files = build(archive_dir, n_patients, n_slices)
    result: dict[str, float | int] = {"n_files": n_files, "write_s": round(time.perf_counter() - t, 2)}

    def timed(label: str, **kw: object) -> None:
        t0 = time.perf_counter()
        archive = scan_archive(archive_dir, **kw)  # type: ignore[arg-type]
        result[f"{label}_s"] = round(time.perf_counter() - t0, 3)
        result[f"{label}_n_read"] = int(archive.scan_stats["n_read"])
        assert sum(len(v) for v in archive.timepoints.values()) == 2 * n_patients

    timed("no_cache")
    timed("cold_cache", cache_dir=out)
    timed("warm_cache", cache_dir=out)
    for f in sorted(archive_dir.rglob("*.dcm"))[:10]:
        os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 1_000_000))
    timed("warm_10_touched", cache_dir=out)
    result["files_per_s_cold"] = round(n_files / result["cold_cache_s"])
    result["files_per_s_warm"] = round(n_files / result["warm_cache_s"])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
