"""scan_archive on the bundled sample archive: one CT series and its mask per timepoint, as ground truth."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from hpd_imaging.archive import read_clinical, scan_archive


def test_sample_dicom_one_ct_and_its_mask_per_timepoint(sample_dicom: Path, tmp_path: Path) -> None:
    truth = json.loads((sample_dicom / "ground_truth.json").read_text())
    archive = scan_archive(sample_dicom, cache_dir=tmp_path)
    assert archive.issues == []
    assert archive.patients == sorted(p["patient_id"] for p in truth["patients"])
    for patient in truth["patients"]:
        tps = archive.timepoints[patient["patient_id"]]
        assert [tp.scan_date for tp in tps] == [
            dt.date.fromisoformat(t["scan_date"]) for t in patient["timepoints"]
        ]
        for tp, expected in zip(tps, patient["timepoints"], strict=True):
            assert tp.ct.series_instance_uid == expected["series_instance_uid"]
            assert tp.ct.frame_of_reference_uid == expected["frame_of_reference_uid"]
            assert sorted({f.parent.relative_to(sample_dicom).as_posix() for f in tp.ct.files}) == [
                Path(expected["ct_dir"]).as_posix()
            ]
            assert [m.path.relative_to(sample_dicom).as_posix() for m in tp.masks] == [expected["mask_path"]]
            assert tp.alternatives == ()
    table = archive.series_table()
    n_timepoints = sum(len(p["timepoints"]) for p in truth["patients"])
    assert len(table) == n_timepoints and table["chosen"].all()
    assert (table["mask_files"] != "").all()
    clinical = read_clinical(archive.clinical_path, known_patients=archive.patients)
    assert len(clinical) == len(truth["patients"])
