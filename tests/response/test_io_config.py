"""Input validation, settings validation, concordance table, growth model and the ``kinetics`` command."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hpd_examples import MEAS_COLUMNS, lesion, run
from typer.testing import CliRunner

from hpd_imaging.errors import ClinicalDataError, ConfigError
from hpd_imaging.response import (
    DEFINITIONS,
    concordance_table,
    fit_growth,
    load_response_config,
    run_response,
)

HEADER = "patient_id,scan_date,lesion_id,organ,is_lymph_node,longest_axial_diameter_mm,short_axis_mm\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ---- input validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (
            "p,2024-01-01,T1,lung,false,abc,3\n",
            r"m\.csv: row 2, column 'longest_axial_diameter_mm': expected a number",
        ),
        (
            "p,2024-01-01,T1,lung,false,-4,3\n",
            r"row 2, column 'longest_axial_diameter_mm': expected a finite number >= 0",
        ),
        (
            "p,2024-13-01,T1,lung,false,4,3\n",
            r"row 2, column 'scan_date': expected an ISO date YYYY-MM-DD, got '2024-13-01'",
        ),
        (
            "p,2024-01-01,T1,lung,maybe,4,3\n",
            r"row 2, column 'is_lymph_node': expected true/false, got 'maybe'",
        ),
        (
            "p,2024-01-01,T1,lung,false,4,3\np,2024-01-01,T1,lung,false,5,3\n",
            r"row 3.*duplicate measurement.*row 2",
        ),
        (
            "p,2024-01-01,T1,lung,true,20,\n",
            r"column 'short_axis_mm': expected a number >= 0, got an empty cell",
        ),
    ],
)
def test_measurement_errors_name_file_row_column_value(tmp_path, body, match):
    from hpd_imaging.response import read_table

    m = write(tmp_path, "m.csv", HEADER + body)
    with pytest.raises(ClinicalDataError, match=match):
        run_response(
            read_table(m),
            pd.DataFrame([{"patient_id": "p", "ici_start_date": "2024-01-02"}]),
            measurements_source=str(m),
        )


def test_missing_columns_and_clinical_errors(tmp_path):
    from hpd_imaging.response import read_table

    m = write(tmp_path, "m.csv", "patient_id,scan_date\np,2024-01-01\n")
    with pytest.raises(ClinicalDataError, match=r"missing required column\(s\) lesion_id, organ"):
        run_response(read_table(m), pd.DataFrame([{"patient_id": "p", "ici_start_date": "2024-01-02"}]))
    good = pd.DataFrame(lesion("p", "T1", {"2024-01-01": 30}), columns=MEAS_COLUMNS)
    with pytest.raises(ClinicalDataError, match=r"clinical: missing required column\(s\) ici_start_date"):
        run_response(good, pd.DataFrame([{"patient_id": "p"}]))
    with pytest.raises(ClinicalDataError, match=r"row 3, column 'patient_id': duplicate patient 'p'"):
        run_response(good, pd.DataFrame([{"patient_id": "p", "ici_start_date": "2024-01-02"}] * 2))
    with pytest.raises(ClinicalDataError, match=r"treatment_stop_date.*on or after ici_start_date"):
        run_response(
            good,
            pd.DataFrame(
                [{"patient_id": "p", "ici_start_date": "2024-01-02", "treatment_stop_date": "2023-12-01"}]
            ),
        )
    with pytest.raises(ClinicalDataError, match=r"ecog_baseline': expected an ECOG grade 0-5, got '7'"):
        run_response(
            good, pd.DataFrame([{"patient_id": "p", "ici_start_date": "2024-01-02", "ecog_baseline": "7"}])
        )


def test_patient_without_clinical_row_is_not_evaluable():
    res = run(
        lesion("x", "T1", {"2024-01-01": 30, "2024-03-01": 40}),
        [{"patient_id": "other", "ici_start_date": "2024-01-02"}],
    )
    row = res.kinetics.set_index("patient_id").loc["x"]
    assert (
        row["hpd_champiat2017"] == "not_evaluable" and "no ICI start date" in row["hpd_champiat2017_reason"]
    )
    assert "other" in set(res.kinetics["patient_id"])


# ---- settings -------------------------------------------------------------------------------------------


def test_bundled_definitions_file_matches_registry_defaults():
    cfg = load_response_config()
    assert set(cfg.definitions) == set(DEFINITIONS)
    for key, d in DEFINITIONS.items():
        for name, thr in d.default_thresholds.items():
            assert cfg.threshold(key, name) == thr, (key, name)
    assert cfg.month_days == 30.4375 and cfg.nonpositive_reference_policy == "inequality_if_exp_positive"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("month_dayz: 30\n", r"month_dayz: Extra inputs are not permitted"),
        ("definitions:\n  champiat2018: {}\n", r"unknown HPD definition 'champiat2018'"),
        (
            "definitions:\n  kas2020:\n    thresholds:\n      tgr_ratio: {value: 2}\n",
            r"'kas2020' has no threshold 'tgr_ratio'",
        ),
        (
            "definitions:\n  kas2020:\n    thresholds:\n      delta_tgr: {value: 2, comparator: '=>'}\n",
            r"comparator",
        ),
        ("nonpositive_reference_policy: whatever\n", r"nonpositive_reference_policy"),
        ("month_days: -1\n", r"month_days"),
    ],
)
def test_invalid_settings_are_refused(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        load_response_config(write(tmp_path, "defs.yaml", text))


def test_override_changes_label(tmp_path):
    cfg = load_response_config(
        write(
            tmp_path,
            "d.yaml",
            "definitions:\n  ferrara2018:\n    thresholds:\n      delta_tgr: {value: 60, comparator: '>'}\n",
        )
    )
    rows = lesion("e", "T1", {"2024-01-02": 50, "2024-03-01": 55, "2024-05-03": 80})  # Example 1: ΔTGR 56.24
    res = run(rows, [{"patient_id": "e", "ici_start_date": "2024-03-08"}], cfg)
    assert res.kinetics.iloc[0]["hpd_ferrara2018"] == "no_hpd"


# ---- concordance ----------------------------------------------------------------------------------------


def test_concordance_counts_and_jaccard_every_key():
    keys = list(DEFINITIONS)
    base = {f"hpd_{k}": "no_hpd" for k in keys}
    rows = [dict(base, patient_id=str(i)) for i in range(4)]
    rows[0].update(hpd_champiat2017="hpd", hpd_ferrara2018="hpd")
    rows[1].update(hpd_champiat2017="hpd")
    rows[2].update(hpd_ferrara2018="hpd", hpd_kas2020="not_evaluable")
    rows[3].update(hpd_champiat2017="not_evaluable")
    table = concordance_table(pd.DataFrame(rows))
    assert len(table) == len(keys) * (len(keys) - 1) // 2
    assert set(table["definition_a"]) | set(table["definition_b"]) == set(keys)
    pair = table[(table.definition_a == "champiat2017") & (table.definition_b == "ferrara2018")].iloc[0]
    assert (pair.n_evaluable_both, pair.n_both_hpd, pair.n_a_only, pair.n_b_only, pair.n_neither) == (
        3,
        1,
        1,
        1,
        0,
    )
    assert pair.jaccard == pytest.approx(1 / 3)
    none = table[(table.definition_a == "kato2017") & (table.definition_b == "lo_russo2019")].iloc[0]
    assert none.n_neither == 4 and none.jaccard is None


# ---- growth model ---------------------------------------------------------------------------------------


def test_growth_model_recovers_rates():
    t = np.arange(0, 400, 50.0)
    g = fit_growth(list(t), list(50 * np.exp(0.004 * t)))
    assert g["model"] == "g" and g["g_per_day"] == pytest.approx(0.004, rel=1e-4) and g["n_scans"] == 8
    assert g["doubling_time_days"] == pytest.approx(math.log(2) / 0.004, rel=1e-3)
    d = fit_growth(list(t), list(50 * np.exp(-0.006 * t)))
    assert d["model"] == "d" and d["d_per_day"] == pytest.approx(0.006, rel=1e-4)
    rng = np.random.default_rng(0)
    y = 50 * (np.exp(-0.02 * t) + np.exp(0.005 * t) - 1) * (1 + rng.normal(0, 0.01, t.size))
    gd = fit_growth(list(t), list(y))
    assert gd["model"] == "gd"
    # 1 % noise (the first value, used to normalise, is noisy too): estimates within a few percent
    assert gd["g_per_day"] == pytest.approx(0.005, rel=0.05)
    assert gd["d_per_day"] == pytest.approx(0.02, rel=0.1)
    assert gd["g_ci_low"] < gd["g_per_day"] < gd["g_ci_high"] and gd["g_se"] > 0
    assert fit_growth([0.0], [50.0])["model"] == ""


# ---- the command ---------------------------------------------------------------------------------------


def test_kinetics_command_writes_every_table(tmp_path):
    from hpd_imaging.cli import app

    rows = lesion("a", "T1", {"2024-01-02": 50, "2024-03-01": 55, "2024-05-03": 80})
    rows += lesion("b", "T1", {"2024-01-10": 60, "2024-03-10": 50, "2024-05-05": 70})
    m = tmp_path / "m.csv"
    pd.DataFrame(rows, columns=MEAS_COLUMNS).to_csv(m, index=False)
    c = write(
        tmp_path,
        "c.csv",
        "patient_id,ici_start_date,treatment_stop_date,age\na,2024-03-08,2024-05-03,61\nb,2024-03-15,,70\n",
    )
    out = tmp_path / "out" / "kinetics.csv"
    result = CliRunner().invoke(app, ["kinetics", str(m), "--clinical", str(c), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    for name in ("kinetics", "response", "targets", "growth", "concordance"):
        assert (out.parent / f"{name}.csv").exists(), name
    kin = pd.read_csv(out)
    assert list(kin["hpd_champiat2017"]) == ["hpd", "hpd"] and list(kin["age"]) == [61, 70]
    assert kin.loc[0, "tgr_exp_pct_per_month"] == pytest.approx(72.130, abs=1e-3)
    bad = write(tmp_path, "bad.csv", HEADER + "a,2024-01-01,T1,lung,false,x,3\n")
    result = CliRunner().invoke(app, ["kinetics", str(bad), "--clinical", str(c), "--out", str(out)])
    assert result.exit_code == 2


def test_docs_table_lists_every_definition_key():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "hpd_definitions.md").read_text(encoding="utf-8")
    for key in DEFINITIONS:
        assert f"| `{key}` |" in docs, key


@pytest.mark.parametrize(
    "cell",
    ["04/09/2024", "20240409"],  # a day/month order to guess, and a compact form the run reader refuses too
)
def test_kinetics_and_run_refuse_a_clinical_cell_with_the_same_message(tmp_path, cell):
    """clinical.csv is validated once, by one reader, for `kinetics` as for `run` (issue 14): the same cell
    gives the same rule and message naming the line, column and value, whichever command reads it."""
    from hpd_imaging.archive import read_clinical
    from hpd_imaging.cli import app
    from hpd_imaging.errors import ClinicalDataError

    rows = lesion("a", "T1", {"2024-01-02": 50, "2024-03-01": 55, "2024-05-03": 80})
    m = tmp_path / "m.csv"
    pd.DataFrame(rows, columns=MEAS_COLUMNS).to_csv(m, index=False)
    c = write(tmp_path, "c.csv", f"patient_id,ici_start_date\na,{cell}\n")
    with pytest.raises(ClinicalDataError, match=r"c\.csv line 2, column ici_start_date") as run_error:
        read_clinical(c)  # what `run` (and `survival`) call
    out = tmp_path / "out" / "kinetics.csv"
    result = CliRunner().invoke(app, ["kinetics", str(m), "--clinical", str(c), "--out", str(out)])
    assert result.exit_code == 2
    assert str(run_error.value).splitlines()[0] in " ".join(result.output.split())
