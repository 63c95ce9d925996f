"""The report at cohort scale (issue 21): 500 patients through the real report code (write_report: cohort page
plus one page per patient), from synthetic in-memory tables (no imaging: tables and the small burden-curve
figures only), opened in headless Chromium. Done when each page reaches its load event in under 5 s.

How the time is measured: a copy of the page with a 1-line script, next to the page (so relative links and
sizes are the same), records ``performance.now()`` in the ``load`` handler (time from the start of navigation
to the load event, the browser's own clock, excluding the browser's start-up), then forces a full layout of
the page and records the time again; Chromium's ``--dump-dom`` prints the DOM after the load event, figures
included. The whole Chromium process (start-up, load, dump, exit) is timed from outside as well.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hpd_imaging.report import ReportInputs, write_report

N_PATIENTS = 500
LOAD_LIMIT_S = 5.0
DEFINITIONS = [  # 19 label columns, as many as the response stage writes
    "champiat2017", "saada_delord2017", "ferrara2018", "kato2017", "singavi2017", "lo_russo2019_clinical",
    "lo_russo2019_radiological", "kanjanapan2019", "matos2020", "petrioli2021", "gomes_da_morais2020",
    "kas2020_tgr", "kas2020_tgk", "kim2021_tgk", "kim2021_tgr", "abbas2022", "forschner2020",
    "hwang2020", "refae2020",
]  # fmt: skip
LABELS = ("hpd", "no_hpd", "not_evaluable")


def _cohort(n: int, seed: int = 21) -> dict[str, pd.DataFrame]:
    """n patients with 4 scans (pre-baseline, baseline, 2 follow-ups) of 3 lesions, a label and a reason under
    every definition, kinetics, response rows, model risk and a concordance table."""
    rng = np.random.default_rng(seed)
    lesions, response, kinetics = [], [], []
    for k in range(n):
        pid = f"HPD{k:04d}"
        start = dt.date(2019, 1, 1) + dt.timedelta(days=int(rng.integers(0, 700)))
        dates = [start + dt.timedelta(days=d) for d in (0, 56, 112, 168)]
        growth = rng.lognormal(0.0, 0.4, size=3)
        for j, date in enumerate(dates):
            sld = 0.0
            for lesion in range(3):
                d = 10.0 + 8 * lesion + 4 * j * (growth[lesion] - 0.8)
                sld += d
                lesions.append(
                    {"patient_id": pid, "scan_date": date.isoformat(), "lesion_id": f"L{lesion + 1}",
                     "organ": "lung", "is_lymph_node": False, "is_new": False,
                     "longest_axial_diameter_mm": d, "short_axis_mm": 0.7 * d, "volume_mm3": np.pi / 6 * d**3}
                )  # fmt: skip
            response.append(
                {"patient_id": pid, "scan_date": date.isoformat(), "sld_mm": sld, "volume_mm3": 0.0,
                 "role": ("pre_baseline", "baseline", "follow_up", "follow_up")[j]}
            )  # fmt: skip
        row = {
            "patient_id": pid,
            "ici_start_date": (dates[1] + dt.timedelta(days=3)).isoformat(),
            "pre_baseline_date": dates[0].isoformat(),
            "baseline_date": dates[1].isoformat(),
            "first_eval_date": dates[2].isoformat(),
            "sld_pre_baseline_mm": response[-4]["sld_mm"],
            "sld_baseline_mm": response[-3]["sld_mm"],
            "sld_first_eval_mm": response[-2]["sld_mm"],
            "tgr_ref_pct_per_month": float(rng.normal(10, 5)),
            "tgr_exp_pct_per_month": float(rng.normal(20, 15)),
            "recist_first_eval": "SD",
        }
        for name in DEFINITIONS:
            row[f"hpd_{name}"] = LABELS[int(rng.integers(0, 3))]
            row[f"hpd_{name}_reason"] = f"TGR ratio {rng.uniform(0.5, 4):.2f} vs threshold 2 ({name})"
        kinetics.append(row)
    ids = [r["patient_id"] for r in kinetics]
    concordance = pd.DataFrame(
        [{"definition_a": a, "definition_b": b, "jaccard": float(rng.uniform()), "n_both": 10}
         for a in DEFINITIONS for b in DEFINITIONS if a < b]
    )  # fmt: skip
    predictions = pd.DataFrame(
        {"patient_id": ids, "hpd_risk": rng.uniform(size=n), "predicted_hpd": "no_hpd", "threshold": 0.5,
         "definition": DEFINITIONS[0]}
    )  # fmt: skip
    return {
        "lesions": pd.DataFrame(lesions),
        "kinetics": pd.DataFrame(kinetics),
        "response": pd.DataFrame(response),
        "concordance": concordance,
        "predictions": predictions,
        "clinical": pd.DataFrame({"patient_id": ids}),
    }


_PROBE = (
    "<script>window.addEventListener('load',function(){var t0=performance.now();"
    "document.body.getBoundingClientRect();var h=document.documentElement.scrollHeight;"
    "var t1=performance.now();var im=document.images,ok=0;"
    "for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>0)ok++;}"
    "var d=document.createElement('div');d.id='timing';"
    "d.textContent=t0.toFixed(1)+' '+t1.toFixed(1)+' '+h+' '+ok+'/'+im.length;"
    "document.body.appendChild(d);});</script>"
)


def _load(chromium, page: Path) -> dict[str, float]:  # noqa: ANN001 - the conftest's Chromium
    probe = page.with_name(f"_probe_{page.name}")
    probe.write_text(
        page.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"), encoding="utf-8"
    )
    try:
        t = time.perf_counter()
        res = chromium.run("--dump-dom", probe.resolve().as_uri())
        process_s = time.perf_counter() - t
    finally:
        probe.unlink()
    m = re.search(r'<div id="timing">([\d.]+) ([\d.]+) (\d+) (\d+)/(\d+)</div>', res.stdout)
    assert m is not None, f"no timing in the DOM (rc {res.returncode}): {res.stderr[-1500:]}"
    return {
        "load_s": float(m.group(1)) / 1000,
        "layout_s": float(m.group(2)) / 1000,
        "height_px": float(m.group(3)),
        "images_ok": float(m.group(4)),
        "images": float(m.group(5)),
        "process_s": process_s,
    }


@pytest.fixture(scope="module")
def big_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    out = tmp_path_factory.mktemp("report500")
    inputs = ReportInputs(**_cohort(N_PATIENTS))
    t = time.perf_counter()
    path = write_report(out, inputs, workers=2)  # patient pages rendered by 2 processes
    return path, time.perf_counter() - t


@pytest.mark.slow
def test_pages_rendered_by_processes_equal_the_serial_ones(tmp_path: Path) -> None:
    inputs = ReportInputs(**_cohort(16))  # the smallest cohort that the pool takes (8 per worker)
    serial, pooled = tmp_path / "serial", tmp_path / "pooled"
    write_report(serial, inputs)
    seen: list[str] = []
    write_report(pooled, inputs, workers=2, progress=seen.append)
    assert seen == list(inputs.patients)  # progress per page, in order
    names = sorted(p.name for p in (serial / "report_patients").iterdir())
    assert len(names) == 16 and names == sorted(p.name for p in (pooled / "report_patients").iterdir())
    for name in names:
        assert (serial / "report_patients" / name).read_bytes() == (
            pooled / "report_patients" / name
        ).read_bytes()
    assert (serial / "report.html").read_bytes() == (pooled / "report.html").read_bytes()


@pytest.mark.slow
def test_500_patient_report_sizes(big_report: tuple[Path, float]) -> None:
    report, write_s = big_report
    pages = sorted((report.parent / "report_patients").glob("*.html"))
    assert len(pages) == N_PATIENTS
    cohort_kib = report.stat().st_size / 1024
    page_kib = [p.stat().st_size / 1024 for p in pages]
    html = report.read_text(encoding="utf-8")
    assert len(re.findall(r'<a href="report_patients/HPD\d{4}\.html">', html)) == N_PATIENTS
    assert len(re.findall(r"<img ", html)) == 3  # cohort figures only: spider, waterfall, concordance
    print(
        f"\n500-patient report: written in {write_s:.1f} s; report.html {cohort_kib:.0f} KiB "
        f"({cohort_kib * 1024 / N_PATIENTS:.0f} bytes per patient), patient pages "
        f"{np.mean(page_kib):.0f} KiB mean ({min(page_kib):.0f}-{max(page_kib):.0f})"
    )
    assert cohort_kib < 2048  # the cohort page grows by a table row per patient, not by figures


@pytest.mark.slow
def test_500_patient_report_opens_in_chromium_under_5_s(big_report: tuple[Path, float], chromium) -> None:  # noqa: ANN001
    report, _ = big_report
    cohort = _load(chromium, report)
    page = _load(
        chromium, max((report.parent / "report_patients").glob("*.html"), key=lambda p: p.stat().st_size)
    )
    print(f"\nChromium, 500 patients: cohort page {cohort}; largest patient page {page}")
    for name, t in (("report.html", cohort), ("a patient page", page)):
        assert t["images_ok"] == t["images"] > 0, name  # every figure decoded, none broken
        assert t["height_px"] > 1000, name  # laid out, not an empty page
        assert t["load_s"] < LOAD_LIMIT_S, f"{name}: load event after {t['load_s']:.2f} s"
        assert t["layout_s"] < LOAD_LIMIT_S, f"{name}: laid out after {t['layout_s']:.2f} s"
