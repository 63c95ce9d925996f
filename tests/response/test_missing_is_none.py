"""Missing is None, never NaN: a patient's labels do not depend on other patients' rows (issue 14).

A blank optional cell (volume_mm3, short_axis_mm, is_new, is_target, ECOG ...) must mean "not measured" for
that patient whatever the other rows of the file hold. pandas turns blanks into NaN as soon as another row of
the column holds a number; these tests mix cohorts whose optional columns differ, shuffle the rows, and
compare each patient's outputs with those of the patient alone.
"""

from __future__ import annotations

import io
import math

import pandas as pd
import pytest

from hpd_imaging.course import courses_from_tables, parse_clinical, parse_measurements
from hpd_imaging.domain import LesionMeasurement
from hpd_imaging.response import ResponseConfig, read_table, run_response

CFG = ResponseConfig()

# Cohort A: diameters only (no volume_mm3, is_new, is_target columns; no ECOG columns)
A_MEAS = """patient_id,scan_date,lesion_id,organ,is_lymph_node,longest_axial_diameter_mm,short_axis_mm
A1,2024-01-02,T1,lung,false,30,
A1,2024-01-02,T2,liver,false,20,
A1,2024-03-01,T1,lung,false,33,
A1,2024-03-01,T2,liver,false,22,
A1,2024-05-03,T1,lung,false,48,
A1,2024-05-03,T2,liver,false,32,
A2,2024-02-01,N1,lymph_node,true,,18
A2,2024-02-01,L1,liver,false,25,
A2,2024-04-01,N1,lymph_node,true,,19
A2,2024-04-01,L1,liver,false,26,
A2,2024-06-03,N1,lymph_node,true,,20
A2,2024-06-03,L1,liver,false,0,
"""
A_CLIN = """patient_id,ici_start_date,treatment_stop_date
A1,2024-03-08,2024-05-03
A2,2024-04-03,
"""
# Cohort B: every optional column filled (volumes, is_new, ECOG), one new lesion
B_MEAS = (
    (
        "patient_id,scan_date,lesion_id,organ,is_lymph_node,longest_axial_diameter_mm,short_axis_mm,"
        "volume_mm3,is_new,is_target\n"
    )
    + """B1,2024-01-08,A,lung,false,30,20,10000,false,true
B1,2024-01-08,B,liver,false,20,15,3000,false,true
B1,2024-03-04,A,lung,false,32,21,12000,false,true
B1,2024-03-04,B,liver,false,22,16,3600,false,true
B1,2024-05-06,A,lung,false,34,25,24000,false,true
B1,2024-05-06,B,liver,false,24,17,4200,false,true
B1,2024-05-06,C,bone,false,12,9,700,true,false
"""
)
B_CLIN = """patient_id,ici_start_date,ecog_baseline,ecog_worst_first_2_months,age
B1,2024-03-11,1,3,61
"""


def _csv(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)


def _mixed(a: str, b: str, seed: int, *, as_nan: bool) -> pd.DataFrame:
    """Union of both tables' columns, rows shuffled; blanks as NaN (pandas) or empty strings (read_table)."""
    frame = pd.concat([pd.read_csv(io.StringIO(a)), pd.read_csv(io.StringIO(b))], ignore_index=True)
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    if not as_nan:
        frame = frame.astype(object).where(frame.notna(), "").astype(str)
    return frame


def _rows(result, pid: str) -> dict[str, list[dict]]:
    out = {}
    for name in ("kinetics", "response", "targets", "growth"):
        table = getattr(result, name)
        sub = table[table["patient_id"] == pid].to_dict("records")
        out[name] = [
            {k: v for k, v in r.items() if not (isinstance(v, float) and math.isnan(v))} for r in sub
        ]
    return out


def _without_covariates(rows: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Passthrough covariate columns of the other cohort (age) are absent when a patient runs alone."""
    rows = dict(rows)
    rows["kinetics"] = [{k: v for k, v in r.items() if k != "age"} for r in rows["kinetics"]]
    return rows


@pytest.mark.parametrize("as_nan", [True, False], ids=["nan_blanks", "string_blanks"])
@pytest.mark.parametrize("seed", [0, 1])
def test_each_patient_same_alone_and_mixed(as_nan: bool, seed: int) -> None:
    alone = {
        "A": run_response(_csv(A_MEAS), _csv(A_CLIN), CFG),
        "B": run_response(_csv(B_MEAS), _csv(B_CLIN), CFG),
    }
    mixed = run_response(
        _mixed(A_MEAS, B_MEAS, seed, as_nan=as_nan), _mixed(A_CLIN, B_CLIN, seed, as_nan=as_nan), CFG
    )
    for pid, cohort in (("A1", "A"), ("A2", "A"), ("B1", "B")):
        assert _without_covariates(_rows(mixed, pid)) == _without_covariates(_rows(alone[cohort], pid)), pid


def test_blank_volumes_are_not_measured_even_next_to_measured_ones() -> None:
    mixed = run_response(_mixed(A_MEAS, B_MEAS, 3, as_nan=True), _mixed(A_CLIN, B_CLIN, 3, as_nan=True), CFG)
    kin = mixed.kinetics.set_index("patient_id")
    # A1: no volumes -> the volumetric twins are not evaluable, never no_hpd from a NaN comparison
    for key in ("champiat2017_vol", "ferrara2018_vol", "saada_bouzid2017_vol"):
        assert kin.loc["A1", f"hpd_{key}"] == "not_evaluable", key
        assert "no measured volumes" in kin.loc["A1", f"hpd_{key}_reason"]
    assert kin.loc["A1", "volume_baseline_mm3"] is None
    # A1 is Example-1-like: +45 % at first evaluation -> RECIST PD whatever B's volumes are
    assert kin.loc["A1", "recist_first_eval"] == "PD"
    # B1's volumes do count: +80.8 % (spec Example 7)
    assert kin.loc["B1", "volume_change_pct"] == pytest.approx(80.769, abs=1e-3)
    # A1's ECOG is blank: Lo Russo's ECOG criterion is unknown (1 met + 1 unknown < 3: no_hpd), not a number
    assert kin.loc["A1", "hpd_lo_russo2019"] == "no_hpd"
    assert "1 of 5 criteria met (1 unknown)" in kin.loc["A1", "hpd_lo_russo2019_reason"]
    assert "ECOG change in the first 2 months unknown" in kin.loc["A1", "hpd_lo_russo2019_reason"]


@pytest.mark.parametrize("blank", ["", "NaN", "nan", "NA", float("nan"), None])
def test_table_adapter_turns_every_blank_into_none(blank) -> None:
    df = pd.DataFrame(
        [
            {
                "patient_id": "P",
                "scan_date": "2024-01-01",
                "lesion_id": "L",
                "organ": "lung",
                "is_lymph_node": "false",
                "longest_axial_diameter_mm": "12",
                "short_axis_mm": blank,
                "volume_mm3": blank,
                "is_new": blank,
                "is_target": blank,
                "fragment_of": blank,
            },
            {
                "patient_id": "P",
                "scan_date": "2024-01-02",
                "lesion_id": "L",
                "organ": "lung",
                "is_lymph_node": "false",
                "longest_axial_diameter_mm": 13.0,
                "short_axis_mm": 8.0,
                "volume_mm3": 900.0,
                "is_new": False,
                "is_target": True,
                "fragment_of": "",
            },
        ]
    )
    first = parse_measurements(df)[0]
    assert first.short_axis_mm is None and first.volume_mm3 is None
    assert first.is_new is None and first.is_target is None and first.fragment_of is None
    clinical = pd.DataFrame(
        [
            {"patient_id": "P", "ici_start_date": "2024-01-01", "ecog_baseline": blank, "age": blank},
            {"patient_id": "Q", "ici_start_date": "2024-01-01", "ecog_baseline": 1.0, "age": 70.0},
        ]
    )
    facts = parse_clinical(clinical)
    assert facts["P"].ecog_baseline is None and dict(facts["P"].covariates)["age"] is None
    assert facts["Q"].ecog_baseline == 1
    course = courses_from_tables(df, clinical, CFG)[0]
    assert all(m.volume_mm3 is None or m.volume_mm3 == 900.0 for m in course.measurements)


def test_a_measurement_refuses_nan() -> None:
    with pytest.raises(
        ValueError, match=r"expected volume_mm3 >= 0 and finite \(or None when missing\), got nan"
    ):
        LesionMeasurement("L1", None, float("nan"), 10.0, None, None)


def test_read_table_keeps_blanks_as_empty_strings(tmp_path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(B_MEAS + A_MEAS.split("\n", 1)[1].replace("\n", ",,,\n"), encoding="utf-8")
    table = read_table(path)
    assert not table.isna().any().any()
    rows = parse_measurements(table, str(path))
    assert sum(r.volume_mm3 is None for r in rows) == 12 and sum(r.volume_mm3 is not None for r in rows) == 7
