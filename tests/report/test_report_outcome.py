"""Report additions of issue 19: survival section, KM plot, marks and legends on the existing plots."""

from __future__ import annotations

import datetime as dt
import io
import re
import sys
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from hpd_imaging.outcome.followup import followups
from hpd_imaging.outcome.stage import run_survival
from hpd_imaging.report import ReportInputs, write_report
from hpd_imaging.report.outcome import write_survival
from hpd_imaging.report.plots import at_risk, km_plot, spider_plot, unsegmented_exams

sys.path.insert(0, str(Path(__file__).parent))
from test_report import _cohort  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "outcome"))
from test_outcome_survival import _tables  # noqa: E402


def _png_shape(png: bytes) -> tuple[int, ...]:
    return mpimg.imread(io.BytesIO(png), format="png").shape


def test_at_risk_counts_by_hand():
    # hand table of tests/outcome: hpd times 30, 60, 90, 120 days -> in months
    times = np.array([30, 60, 90, 120]) / 30.4375
    assert [at_risk(times, t) for t in (0.0, 60 / 30.4375, 2.0, 3.0, 4.0)] == [4, 3, 2, 1, 0]


def test_km_plot_from_the_landmark_table():
    kin, clin = _tables()
    result = run_survival(kin, clin)
    labels = dict(zip(kin["patient_id"], kin["hpd_hand"], strict=True))
    png = km_plot(result.os.landmark, labels, "hand")
    assert png is not None and png.startswith(b"\x89PNG")
    h, w = _png_shape(png)[:2]
    assert (w, h) == (540, 378)  # 6.0 x 4.2 in at 90 dpi: room for the at-risk rows
    assert km_plot(result.os.landmark, {}, "nobody labelled") is None


def test_unsegmented_exams_are_those_without_any_mask():
    lesions = pd.DataFrame(
        {
            "patient_id": ["A", "A", "A", "A", "B"],
            "scan_date": ["2024-01-01", "2024-01-01", "2024-03-01", "2024-03-01", "2024-03-01"],
            "lesion_id": ["L1", "L2", "L1", "L2", "L1"],
            "mask_source": ["seg", "seg", None, "", "seg"],
        }
    )
    assert unsegmented_exams(lesions) == {("A", dt.date(2024, 3, 1))}
    lesions.loc[3, "mask_source"] = "seg"  # one lesion vanished, the other segmented: a segmented exam
    assert unsegmented_exams(lesions) == set()
    assert unsegmented_exams(lesions.drop(columns="mask_source")) == set()


def test_spider_plot_marks_an_unsegmented_exam():
    frames = _cohort()
    plain = spider_plot(ReportInputs(**frames))
    lesions = frames["lesions"].assign(mask_source="seg")
    last = lesions["scan_date"] == "2020-07-10"  # P02's last follow-up: no mask
    lesions.loc[last, "mask_source"] = ""
    marked = spider_plot(ReportInputs(**{**frames, "lesions": lesions}))
    assert plain is not None and marked is not None and plain != marked


def test_report_survival_section(tmp_path: Path):
    frames = _cohort()
    kin = frames["kinetics"]
    base = {
        pid: dt.date.fromisoformat(d) for pid, d in zip(kin["patient_id"], kin["baseline_date"], strict=True)
    }
    clinical = pd.DataFrame(
        {
            "patient_id": list(base),
            "ici_start_date": [d + dt.timedelta(days=5) for d in base.values()],
            "death_date": [dt.date(2020, 9, 1), None, dt.date(2021, 6, 1), None],
            "last_followup_date": [None, dt.date(2021, 9, 1), None, dt.date(2021, 1, 1)],
        }
    )
    fu = followups(clinical)  # every row valid: one FollowUp each, with the OS end and event read back
    assert {pid: f.os_end for pid, f in fu.items()} == {
        "P01": (dt.date(2020, 9, 1), True),
        "P02": (dt.date(2021, 9, 1), False),
        "P03": (dt.date(2021, 6, 1), True),
        "P<04>": (dt.date(2021, 1, 1), False),  # an id with HTML characters (test_report cohort)
    }
    result = run_survival(kin, clinical, frames["lesions"])
    landmark = result.os.landmark.set_index("patient_id")
    for pid, first in zip(kin["patient_id"], kin["first_eval_date"], strict=True):
        if first is None or (isinstance(first, float) and np.isnan(first)):
            continue  # P04: left out (checked in the html below)
        days = (fu[pid].os_end[0] - dt.date.fromisoformat(first)).days
        assert landmark.loc[pid, "time_months"] == pytest.approx(days / 30.4375, abs=1e-12)
    write_survival(result, kin, tmp_path)
    html = write_report(tmp_path, ReportInputs(**frames)).read_text(encoding="utf-8")
    assert 'id="survival"' in html and "Caveat." in html and "not reliable" in html
    assert len(re.findall(r'<img alt="Kaplan-Meier (champiat2017|ferrara2018)"', html)) == 2
    # P<04> has no first evaluation: counted as left out
    assert "1 (no first evaluation)" in html
    assert "Grey cells are undefined" in html


def test_report_without_survival_files_has_no_section(tmp_path: Path):
    html = write_report(tmp_path, ReportInputs(**_cohort())).read_text(encoding="utf-8")
    assert 'id="survival"' not in html


@pytest.mark.parametrize("n", [3, 60])
def test_waterfall_labels_fit(n: int):
    from hpd_imaging.report.plots import waterfall_plot

    rows = [
        {
            "patient_id": f"PATIENT-{i:03d}",
            "sld_baseline_mm": 50.0,
            "sld_first_eval_mm": 50.0 + i,
            "hpd_champiat2017": "hpd" if i % 3 == 0 else "no_hpd",
        }
        for i in range(n)
    ]
    frames = _cohort()
    frames["kinetics"] = pd.DataFrame(rows)
    inputs = ReportInputs(**frames)
    png = waterfall_plot(inputs)
    assert png is not None
    h, w = _png_shape(png)[:2]
    assert w >= min(0.32 * n + 2.0, 24.0) * 90 - 1 and h == int(4.4 * 90)


def test_outcome_stage_computes_in_outcome_and_report_only_writes(tmp_path: Path):
    import ast

    import hpd_imaging.report.outcome as report_outcome
    from hpd_imaging.outcome import OutcomeResult, run_outcome
    from hpd_imaging.report.outcome import write_outcome

    # report/outcome.py calls no computing function of the outcome stage
    tree = ast.parse(Path(report_outcome.__file__).read_text(encoding="utf-8"))
    called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert not called & {"run_survival", "run_outcome", "lesion_kinetics_table", "best_response_table"}
    assert not hasattr(report_outcome, "outcome_stage")

    kin, clin = _tables()
    response = pd.DataFrame(
        {
            "patient_id": ["h1", "h1"],
            "scan_date": ["2024-01-01", "2024-03-01"],
            "recist_response": ["PD", "PD"],
        }
    )
    result = run_outcome(kin, response, clin, None)  # computes, writes nothing
    assert isinstance(result, OutcomeResult) and not any(tmp_path.iterdir())
    assert result.lesion_kinetics is None and result.survival is not None and result.survival_skipped is None
    hand = {d.definition: d for d in result.survival.os.definitions}["hand"]
    assert hand.logrank_chi2 == pytest.approx(2.4886723, abs=1e-6)  # the hand table of tests/outcome
    assert result.best_response.set_index("patient_id").loc["h1", "bor_recist"] == "PD"
    paths = write_outcome(result, kin, tmp_path)
    assert pd.read_csv(paths["survival"]).set_index("definition").loc[
        "hand", "logrank_chi2"
    ] == pytest.approx(2.4886723, abs=1e-6)
    assert pd.read_csv(paths["best_response"]).set_index("patient_id").loc["h1", "bor_recist"] == "PD"
    # no follow-up columns: survival skipped with the reason, the tables still computed
    skipped = run_outcome(kin, response, clin[["patient_id", "ici_start_date"]], None)
    assert skipped.survival is None and "death_date/last_followup_date" in (skipped.survival_skipped or "")
    assert skipped.best_response is not None
