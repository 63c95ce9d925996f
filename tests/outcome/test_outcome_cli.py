"""`hpd-imaging survival` end to end, its errors (exit 2, one sentence), and `run` on sample_dicom."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from hpd_imaging.cli import app
from hpd_imaging.outcome.survival import SURVIVAL_COLUMNS

sys.path.insert(0, str(Path(__file__).parent))
from test_outcome_survival import EVAL, _tables  # noqa: E402

runner = CliRunner()


def _write(tmp_path: Path, clin: pd.DataFrame | None = None) -> tuple[Path, Path]:
    kin, default = _tables()
    clin = default if clin is None else clin
    clin = clin.assign(age=[60, 70, 65, 55, 80, 62, 71, 58, 66])
    kin.to_csv(tmp_path / "kinetics.csv", index=False)
    clin.to_csv(tmp_path / "clinical.csv", index=False)
    return tmp_path / "kinetics.csv", tmp_path / "clinical.csv"


def test_survival_command_writes_tables_and_plots(tmp_path: Path):
    kin, clin = _write(tmp_path)
    out = tmp_path / "out"
    res = runner.invoke(app, ["survival", str(kin), "--clinical", str(clin), "--out", str(out)])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out / "survival.csv")
    assert list(table.columns) == SURVIVAL_COLUMNS
    hand = table.set_index("definition").loc["hand"]
    assert hand["logrank_chi2"] == pytest.approx(2.4886723, abs=1e-6)
    assert (out / "survival_plots" / "km_os_hand.png").read_bytes().startswith(b"\x89PNG")
    assert (out / "survival_ranking.csv").exists() and "not reliable" in res.output
    assert not (out / "survival_pfs.csv").exists()  # no progression_date column


def test_pfs_tables_when_progression_dates_are_given(tmp_path: Path):
    _, clin = _tables()
    clin["progression_date"] = [EVAL + dt.timedelta(days=10)] + [None] * 8
    kin, clin_path = _write(tmp_path, clin)
    out = tmp_path / "out"
    res = runner.invoke(app, ["survival", str(kin), "--clinical", str(clin_path), "--out", str(out)])
    assert res.exit_code == 0, res.output
    pfs = pd.read_csv(out / "survival_pfs.csv").set_index("definition").loc["hand"]
    # h1 progresses on day 10 (before its death on day 30): hpd events at 10, 60, 90 days
    assert pfs["events_hpd"] == 3 and "median_pfs_hpd_months" in pfs.index
    assert pfs["median_pfs_hpd_months"] == pytest.approx(60 / 30.4375)


def test_death_before_ici_start_is_exit_2_with_the_cell(tmp_path: Path):
    _, clin = _tables()
    clin.loc[2, "death_date"] = dt.date(2023, 1, 1)
    kin, clin_path = _write(tmp_path, clin)
    res = runner.invoke(
        app, ["survival", str(kin), "--clinical", str(clin_path), "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 2
    assert (
        "patient h3, column death_date: expected a date on or after ici_start_date 2023-11-01" in res.output
    )
    assert "Traceback" not in res.output


def test_followup_before_last_scan_is_exit_2(tmp_path: Path):
    _, clin = _tables()
    kin, clin_path = _write(tmp_path, clin)
    meas = pd.DataFrame(
        {
            "patient_id": ["n2"],
            "scan_date": [(EVAL + dt.timedelta(days=200)).isoformat()],
            "lesion_id": ["L1"],
        }
    )
    meas.to_csv(tmp_path / "m.csv", index=False)
    args = ["survival", str(kin), "--clinical", str(clin_path), "--out", str(tmp_path / "o")]
    res = runner.invoke(app, [*args, "--measurements", str(tmp_path / "m.csv")])
    assert res.exit_code == 2
    assert "patient n2, column last_followup_date: expected a date on or after the last scan" in res.output


def test_clinical_without_followup_columns_is_refused(tmp_path: Path):
    _, clin = _tables()
    kin, clin_path = _write(tmp_path, clin.drop(columns=["death_date", "last_followup_date"]))
    res = runner.invoke(
        app, ["survival", str(kin), "--clinical", str(clin_path), "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 2 and "expected death_date and/or last_followup_date" in res.output


@pytest.mark.slow
def test_run_on_sample_dicom_writes_survival_and_plots(sample_dicom: Path, tmp_path: Path):
    here = Path(__file__).parents[1] / "pipeline"
    config = here / "data" / "config_fast.yaml"
    out = tmp_path / "out"
    exe = Path(sys.executable).parent / "hpd-imaging"
    proc = subprocess.run(
        [str(exe), "run", str(sample_dicom), "--out", str(out), "--config", str(config), "--quiet"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    survival = pd.read_csv(out / "survival.csv").set_index("definition")
    assert list(survival.reset_index().columns) == SURVIVAL_COLUMNS
    # sample_dicom: SYN001 is the only hyperprogressor (Champiat), the 4 patients all reach the landmark
    assert survival.loc["champiat2017", ["n_hpd", "n_no_hpd"]].tolist() == [1, 3]
    assert (out / "survival_plots" / "km_os_champiat2017.png").exists()
    bor = pd.read_csv(out / "best_response.csv").set_index("patient_id")
    assert bor.loc["SYN001", "bor_recist"] == "PD" and bor.loc["SYN002", "bor_recist"] == "PR"
    lk = pd.read_csv(out / "lesion_kinetics.csv")
    kin = pd.read_csv(out / "kinetics.csv").set_index("patient_id")
    # the conventions of the run's response stage, stated on every row
    assert set(lk["month_days"]) == set(kin["month_days"]) == {30.4375}
    assert set(lk["exp_period_start"]) == set(kin["exp_period_start"])
    # a patient's experimental interval is the kinetics.csv one
    for pid, t_exp in lk.groupby("patient_id")["t_exp_days"].first().items():
        assert t_exp == kin.loc[pid, "t_exp_days"] or (pd.isna(t_exp) and pd.isna(kin.loc[pid, "t_exp_days"]))
    html = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="survival"' in html and 'alt="Kaplan-Meier champiat2017"' in html


def test_unwritable_output_is_exit_2_in_one_sentence(tmp_path: Path):
    kin, clin = _write(tmp_path)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    res = runner.invoke(app, ["survival", str(kin), "--clinical", str(clin), "--out", str(blocker / "out")])
    assert res.exit_code == 2
    assert "cannot write to" in res.output and "Traceback" not in res.output
