"""clinical.csv validation: every error names the file, the line, the column and the value."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from hpd_imaging.archive import read_clinical
from hpd_imaging.errors import ClinicalDataError

GOOD = (
    "patient_id,ici_start_date,treatment_stop_date,death_from_progression,age,sex\n"
    "P1,2024-02-01,2024-06-30,false,64,F\n"
    "P2,2024-03-15,,yes,,M\n"
)


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "clinical.csv"
    path.write_text(text)
    return path


def test_valid_table_is_typed(tmp_path: Path) -> None:
    table = read_clinical(_csv(tmp_path, GOOD), known_patients=["P1", "P2", "P3"])
    assert table["patient_id"].tolist() == ["P1", "P2"]
    assert table["ici_start_date"].tolist() == [dt.date(2024, 2, 1), dt.date(2024, 3, 15)]
    assert table["treatment_stop_date"].tolist() == [dt.date(2024, 6, 30), None]
    assert table["death_from_progression"].tolist() == [False, True]
    assert table["age"].iloc[0] == 64 and table["age"].isna().iloc[1]
    assert table["sex"].tolist() == ["F", "M"]


@pytest.mark.parametrize(
    ("text", "known", "match"),
    [
        (
            "patient_id,ici_start_date\nP1,2024-02-30\n",
            None,
            r"clinical\.csv line 2, column ici_start_date: expected an ISO date YYYY-MM-DD, got '2024-02-30'",
        ),
        (
            "patient_id,ici_start_date\nP1,2024-02-01\nP2,01/03/2024\n",
            None,
            r"line 3, column ici_start_date: expected an ISO date YYYY-MM-DD, got '01/03/2024'",
        ),
        (
            "patient_id,ici_start_date\nP1,2024-02-01\nP9,2024-02-01\n",
            ["P1", "P2"],
            r"line 3, column patient_id: unknown patient 'P9': not in the archive \(2 patients\)",
        ),
        (
            "patient_id,ici_start_date\nP1,2024-02-01\nP2,2024-02-01\nP1,2024-03-01\n",
            None,
            r"line 4, column patient_id: duplicate patient 'P1' \(first on line 2\)",
        ),
        (
            "patient_id,start\nP1,2024-02-01\n",
            None,
            r"clinical\.csv: missing required column\(s\) ici_start_date; "
            r"found columns \['patient_id', 'start'\]",
        ),
        (
            "id,ici_start_date\nP1,2024-02-01\n",
            None,
            r"missing required column\(s\) patient_id",
        ),
        (
            "patient_id,ici_start_date\n,2024-02-01\n",
            None,
            r"line 2, column patient_id: expected a patient id, got an empty cell",
        ),
        (
            "patient_id,ici_start_date,death_from_progression\nP1,2024-02-01,maybe\n",
            None,
            r"line 2, column death_from_progression: expected true/false, got 'maybe'",
        ),
        (
            "patient_id,ici_start_date,age\nP1,2024-02-01,sixty\n",
            None,
            r"line 2, column age: expected a number, got 'sixty'",
        ),
        (
            "patient_id,ici_start_date,treatment_stop_date\nP1,2024-02-01,2024-01-01\n",
            None,
            r"line 2, column treatment_stop_date: "
            r"expected a date on or after ici_start_date 2024-02-01, got 2024-01-01",
        ),
    ],
)
def test_errors_name_line_column_and_value(
    tmp_path: Path, text: str, known: list[str] | None, match: str
) -> None:
    with pytest.raises(ClinicalDataError, match=match) as info:
        read_clinical(_csv(tmp_path, text), known_patients=known)
    assert info.value.path == str(tmp_path / "clinical.csv")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ClinicalDataError, match="expected a clinical CSV file, got nothing there"):
        read_clinical(tmp_path / "clinical.csv")


def test_scan_records_clinical_path(tmp_path: Path) -> None:
    from archive_factory import write_series

    from hpd_imaging.archive import scan_archive

    write_series(tmp_path / "P1", 3)
    _csv(tmp_path, "patient_id,ici_start_date\nP1,2024-02-01\n")
    archive = scan_archive(tmp_path)
    assert archive.clinical_path == tmp_path / "clinical.csv"
    assert archive.n_non_dicom_skipped == 0
    table = read_clinical(archive.clinical_path, known_patients=archive.patients)
    assert table["ici_start_date"].tolist() == [dt.date(2024, 2, 1)]
