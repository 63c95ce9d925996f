"""report.html: derived numbers, self-containment, and a real render in headless Chromium.

The cohort is built by hand: 4 patients with pre-baseline, baseline and one or two follow-ups, labels under
two definitions with known counts, kinetics, response rows, a concordance table, model predictions, and lesion
snapshots cut with ``make_snapshot`` from a synthetic CT (a disk lesion with known axes).
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import re
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from hpd_imaging.domain import CtImage, ImageGeometry, LesionMask, LesionMeasurement, MaskSource
from hpd_imaging.errors import ClinicalDataError, MeasurementError
from hpd_imaging.report import LesionSnapshot, ReportInputs, make_snapshot, render_report, write_report
from hpd_imaging.report.inputs import change_from_baseline, first_eval_change, label_summary, patient_labels

D = dt.date
PATIENTS = {
    # pid: (scan dates, sld per scan, label champiat2017, label ferrara2018)
    "P01": ([D(2020, 1, 1), D(2020, 3, 1), D(2020, 5, 1)], [40.0, 44.0, 88.0], "hpd", "hpd"),
    "P02": (
        [D(2020, 1, 10), D(2020, 3, 10), D(2020, 5, 10), D(2020, 7, 10)],
        [50.0, 60.0, 45.0, 40.0],
        "no_hpd",
        "no_hpd",
    ),
    "P03": ([D(2020, 2, 1), D(2020, 4, 1), D(2020, 6, 1)], [30.0, 30.0, 36.0], "no_hpd", "hpd"),
    "P<04>": ([D(2020, 2, 15), D(2020, 4, 15)], [20.0, 25.0], "not_evaluable", "not_evaluable"),
}


def _cohort() -> dict[str, pd.DataFrame]:
    lesions, response, kinetics = [], [], []
    for pid, (dates, slds, lab_c, lab_f) in PATIENTS.items():
        for date, sld in zip(dates, slds, strict=True):
            for n, share in ((1, 0.6), (2, 0.4)):
                d = sld * share
                lesions.append(
                    {
                        "patient_id": pid,
                        "scan_date": date.isoformat(),
                        "lesion_id": f"L{n}",
                        "organ": "lung",
                        "is_lymph_node": False,
                        "is_new": False,
                        "longest_axial_diameter_mm": d,
                        "short_axis_mm": d * 0.7,
                        "volume_mm3": np.pi / 6 * d**3,
                    }
                )
            response.append(
                {
                    "patient_id": pid,
                    "scan_date": date.isoformat(),
                    "sld_mm": sld,
                    "volume_mm3": np.pi / 6 * ((0.6 * sld) ** 3 + (0.4 * sld) ** 3),
                    "role": "pre_baseline"
                    if date == dates[0]
                    else ("baseline" if date == dates[1] else "follow_up"),
                }
            )
        row = {
            "patient_id": pid,
            "ici_start_date": (dates[1] + dt.timedelta(days=5)).isoformat(),
            "pre_baseline_date": dates[0].isoformat(),
            "baseline_date": dates[1].isoformat(),
            "first_eval_date": dates[2].isoformat() if len(dates) > 2 else None,
            "sld_pre_baseline_mm": slds[0],
            "sld_baseline_mm": slds[1],
            "sld_first_eval_mm": slds[2] if len(slds) > 2 else None,
            "tgr_ref_pct_per_month": 12.5,
            "tgr_exp_pct_per_month": 80.0,
            "tgk_ref_mm_per_month": 2.0,
            "tgk_exp_mm_per_month": 22.0,
            "recist_first_eval": "PD",
            "hpd_champiat2017": lab_c,
            "hpd_champiat2017_reason": f"reason <c> for {pid}",
            "hpd_ferrara2018": lab_f,
            "hpd_ferrara2018_reason": f"reason f for {pid}",
        }
        kinetics.append(row)
    concordance = pd.DataFrame(
        [{"definition_a": "champiat2017", "definition_b": "ferrara2018", "jaccard": 0.5, "n_both": 1}]
    )
    predictions = pd.DataFrame(
        {
            "patient_id": list(PATIENTS),
            "hpd_risk": [0.91, 0.12, 0.47, 0.30],
            "predicted_hpd": ["hpd", "no_hpd", "no_hpd", "no_hpd"],
            "threshold": 0.5,
            "definition": "champiat2017",
        }
    )
    clinical = pd.DataFrame({"patient_id": list(PATIENTS)})
    return {
        "lesions": pd.DataFrame(lesions),
        "kinetics": pd.DataFrame(kinetics),
        "response": pd.DataFrame(response),
        "concordance": concordance,
        "predictions": predictions,
        "clinical": clinical,
    }


def _disk_case(radius_vox: int = 6) -> tuple[CtImage, LesionMask, LesionMeasurement]:
    geometry = ImageGeometry(shape=(5, 48, 48), spacing_mm=(0.7, 0.7, 3.0), origin_mm=(-10.0, 5.0, 100.0))
    k, j, i = np.mgrid[0:5, 0:48, 0:48]
    mask = ((i - 24) ** 2 + (j - 20) ** 2 <= radius_vox**2) & (k >= 1) & (k <= 3)
    hu = np.where(mask, 40.0, -850.0).astype(np.float32)
    ct = CtImage(hu=hu, geometry=geometry)
    lm = LesionMask(mask=mask, geometry=geometry, label="L1", source=MaskSource.SEG)
    la = geometry.index_to_lps(np.array([[24 - radius_vox, 20, 2], [24 + radius_vox, 20, 2]], dtype=float))
    sa = geometry.index_to_lps(np.array([[24, 20 - radius_vox, 2], [24, 20 + radius_vox, 2]], dtype=float))
    meas = LesionMeasurement(
        lesion_id="L1",
        voxel_count=int(mask.sum()),
        volume_mm3=float(mask.sum()) * 1.47,
        longest_axial_diameter_mm=2 * radius_vox * 0.7,
        short_axis_mm=2 * radius_vox * 0.7,
        max_3d_diameter_mm=9.0,
        long_axis_slice_index=2,
        long_axis_endpoints_mm=(tuple(la[0]), tuple(la[1])),
        short_axis_endpoints_mm=(tuple(sa[0]), tuple(sa[1])),
    )
    return ct, lm, meas


def _snapshots() -> list[LesionSnapshot]:
    snaps = []
    for pid, (dates, *_rest) in PATIENTS.items():
        for n, date in enumerate(dates[1:3]):
            ct, lm, meas = _disk_case(4 + 2 * n)
            meas = LesionMeasurement(**{**meas.__dict__, "scan_date": date})
            snaps.append(make_snapshot(ct, lm, meas, patient_id=pid))
    return snaps


@pytest.fixture(scope="module")
def inputs() -> ReportInputs:
    return ReportInputs(
        **_cohort(), snapshots=_snapshots(), provenance={"hpd_imaging": "0.1.0", "config_hash": "abc"}
    )


@pytest.fixture(scope="module")
def report(inputs: ReportInputs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(tmp_path_factory.mktemp("report"), inputs)


def test_label_summary_counts_and_prevalence(inputs: ReportInputs) -> None:
    s = label_summary(inputs).set_index("definition")
    assert s.loc["champiat2017", ["n_hpd", "n_no_hpd", "n_not_evaluable"]].tolist() == [1, 2, 1]
    assert s.loc["champiat2017", "prevalence_pct"] == pytest.approx(100 / 3)
    assert s.loc["ferrara2018", "prevalence_pct"] == pytest.approx(200 / 3)
    assert patient_labels(inputs, "P03") == [
        {"definition": "champiat2017", "label": "no_hpd", "reason": "reason <c> for P03"},
        {"definition": "ferrara2018", "label": "hpd", "reason": "reason f for P03"},
    ]


def test_spider_and_waterfall_values(inputs: ReportInputs) -> None:
    c = change_from_baseline(inputs, "P02")
    assert c["days"].tolist() == [0, 61, 122]
    assert c["pct"].tolist() == pytest.approx([0.0, -25.0, -100 / 3])
    w = first_eval_change(inputs).set_index("patient_id")
    assert w.loc["P01", "pct"] == pytest.approx(100.0)
    assert w.loc["P03", "pct"] == pytest.approx(20.0)
    assert "P<04>" not in w.index  # no first evaluation: no bar
    assert list(w.index) == ["P01", "P03", "P02"]  # sorted, largest growth first


def test_make_snapshot_maps_axes_into_the_crop() -> None:
    ct, lm, meas = _disk_case(6)
    snap = make_snapshot(ct, lm, meas, patient_id="P", margin_mm=7.0)
    (x0, y0), (x1, y1) = snap.long_axis_xy
    # the long axis ran from column 18 to 30 on row 20; in the crop the same pixels carry the mask
    assert (y0, y1) == pytest.approx((y0, y0)) and x1 - x0 == pytest.approx(12.0)
    assert snap.mask[int(round(y0)), int(round(x0))] and snap.mask[int(round(y1)), int(round(x1))]
    assert snap.mask.sum() == lm.mask[2].sum()
    assert snap.pixel_spacing_mm == (0.7, 0.7) and snap.slice_index == 2
    assert snap.hu[int(round(y0)), int(round((x0 + x1) / 2))] == 40.0
    with pytest.raises(MeasurementError, match="expected a non-empty mask"):
        make_snapshot(
            ct,
            LesionMask(mask=np.zeros_like(lm.mask), geometry=lm.geometry, label="L9", source=MaskSource.SEG),
            meas,
        )


def _pages(report: Path) -> dict[str, str]:
    return {
        p.name: p.read_text(encoding="utf-8") for p in sorted((report.parent / "report_patients").iterdir())
    }


def _img_srcs(html: str) -> list[str]:
    return re.findall(r'<img [^>]*src="([^"]+)"', html)


def test_report_is_self_contained(report: Path, inputs: ReportInputs) -> None:
    # written atomically, no leftovers: the cohort page and one page per patient, nothing else
    assert sorted(p.name for p in report.parent.iterdir()) == ["report.html", "report_patients"]
    pages = _pages(report)
    # a plain ID names its page; "P<04>" is no file name: sanitised plus 8 hex digits of its SHA-256
    assert sorted(pages) == ["P01.html", "P02.html", "P03.html", f"P_04_-{_sha8('P<04>')}.html"]
    html = report.read_text(encoding="utf-8")
    for page in [html, *pages.values()]:
        assert not re.search(r"https?://", page), "report references a network resource"
        assert "<script" not in page and "<link" not in page and "@import" not in page
        assert "P<04>" not in page  # user text is escaped
    # cohort page: spider + waterfall + heatmap; each patient page: one burden figure and one strip for
    # lesion L1 (all its scans)
    srcs = _img_srcs(html)
    assert len(srcs) == 3
    for name, page in pages.items():
        assert len(_img_srcs(page)) == 2, name
        srcs += _img_srcs(page)
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        img = mpimg.imread(io.BytesIO(base64.b64decode(src.split(",", 1)[1])), format="png")
        assert img.shape[0] > 50 and img.shape[1] > 50 and float(np.std(img)) > 0.01
    # every patient linked from the label table, with its page holding its section
    links = re.findall(r'<a href="report_patients/([^"]+)">([^<]+)</a>', html)
    assert [(name, pid.replace("&lt;", "<").replace("&gt;", ">")) for name, pid in links] == [
        (name, pid) for pid, name in zip(PATIENTS, sorted(pages), strict=True)
    ]
    for pid, name in zip(PATIENTS, sorted(pages), strict=True):
        escaped = pid.replace("<", "&lt;").replace(">", "&gt;")
        assert f'id="p-{escaped}"' in pages[name] and '<a href="../report.html#labels">' in pages[name]
    assert "reason &lt;c&gt; for P03" in pages["P03.html"] and "reason &lt;c&gt; for P03" not in html
    assert ">0.91<" in html and "33.3 %" in html and "66.7 %" in html
    assert '"config_hash": "abc"' in html.replace("&#34;", '"')
    # pager: P02 links back to P01 and on to P03; the first page has no "previous"
    assert (
        '<a href="P01.html">← P01</a>' in pages["P02.html"]
        and '<a href="P03.html">P03 →</a>' in pages["P02.html"]
    )
    assert "←" not in pages["P01.html"]


def _sha8(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:8]


def test_report_is_deterministic(report: Path, inputs: ReportInputs) -> None:
    from hpd_imaging.report import render_patient_pages

    assert render_report(inputs) == report.read_text(encoding="utf-8")
    assert dict(render_patient_pages(inputs)) == _pages(report)


def test_pages_of_patients_no_longer_in_the_cohort_are_removed(tmp_path: Path) -> None:
    frames = _cohort()
    write_report(tmp_path, ReportInputs(**frames))
    assert (tmp_path / "report_patients" / "P03.html").exists()
    for name in ("lesions", "kinetics", "response", "predictions", "clinical"):
        frames[name] = frames[name][frames[name]["patient_id"] != "P03"]
    write_report(tmp_path, ReportInputs(**frames))
    assert sorted(p.name for p in (tmp_path / "report_patients").iterdir()) == [
        "P01.html", "P02.html", f"P_04_-{_sha8('P<04>')}.html",
    ]  # fmt: skip


def test_page_names_are_unique_and_plain() -> None:
    from hpd_imaging.report import page_names

    names = page_names(["A1", "a1", "B/../x", "C 3", "D-4.x", ".hidden", "é"])
    assert names["D-4.x"] == "D-4.x.html"  # a plain, unique ID is its own name
    assert names["A1"] != names["a1"] and names["A1"].startswith("A1-")  # unique without case too
    assert len(set(names.values())) == len(names)
    for name in names.values():
        assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]*\.html", name), name


def test_report_without_predictions_or_snapshots(tmp_path: Path) -> None:
    frames = _cohort()
    frames["predictions"] = None
    path = write_report(tmp_path, ReportInputs(**frames))
    html = path.read_text(encoding="utf-8")
    assert "Model risk" not in html
    assert len(re.findall(r"<img ", html)) == 3
    pages = _pages(path)
    assert all("Model risk" not in page for page in pages.values())
    assert [len(re.findall(r"<img ", page)) for page in pages.values()] == [1] * len(PATIENTS)


def test_inputs_are_validated() -> None:
    frames = _cohort()
    frames["response"] = frames["response"].drop(columns=["sld_mm"])
    with pytest.raises(ClinicalDataError, match=r"response.csv: expected columns .*missing \['sld_mm'\]"):
        ReportInputs(**frames)
    frames = _cohort()
    frames["kinetics"] = frames["kinetics"].drop(columns=["hpd_champiat2017", "hpd_ferrara2018"])
    with pytest.raises(ClinicalDataError, match=r"kinetics.csv: expected at least one label column"):
        ReportInputs(**frames)
    with pytest.raises(ClinicalDataError, match=r"primary_definition: expected one of"):
        ReportInputs(**_cohort(), primary_definition="kato2017")


def test_chromium_renders_report(report: Path, chromium, tmp_path: Path) -> None:
    png = tmp_path / "shot.png"
    chromium.screenshot(report, png)
    shot = mpimg.imread(png)
    assert shot.shape[0] >= 1000 and shot.shape[1] >= 1000
    gray = shot[..., :3].mean(axis=2)
    assert float(gray.std()) > 0.05, "screenshot is blank"
    assert float((gray < 0.5).mean()) > 0.005, "screenshot has almost no dark (text/figure) pixels"
    # every <img> decoded: a probe script (test-only copy) writes the counts into the DOM after load
    probe = tmp_path / "probe.html"
    script = (
        "<script>window.addEventListener('load',function(){var im=document.images,ok=0;"
        "for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>0)ok++;}"
        "var d=document.createElement('div');d.id='imgcheck';d.textContent=ok+'/'+im.length;"
        "document.body.appendChild(d);});</script>"
    )
    probe.write_text(
        report.read_text(encoding="utf-8").replace("</body>", script + "</body>"), encoding="utf-8"
    )
    dom = chromium.dump_dom(probe)
    m = re.search(r'<div id="imgcheck">(\d+)/(\d+)</div>', dom)
    assert m is not None, dom[-2000:]
    assert (int(m.group(1)), int(m.group(2))) == (3, 3)
    page = report.parent / "report_patients" / "P01.html"
    probe = page.with_name("probe.html")
    probe.write_text(
        page.read_text(encoding="utf-8").replace("</body>", script + "</body>"), encoding="utf-8"
    )
    try:
        dom = chromium.dump_dom(probe)
    finally:
        probe.unlink()
    m = re.search(r'<div id="imgcheck">(\d+)/(\d+)</div>', dom)
    assert m is not None, dom[-2000:]
    assert (int(m.group(1)), int(m.group(2))) == (2, 2)


def test_report_from_the_response_stage_tables(tmp_path: Path) -> None:
    """The report reads the response stage's real kinetics/response/concordance tables (interface check)."""
    from hpd_imaging.response import concordance_table, run_response

    frames = _cohort()
    clinical = frames["kinetics"][["patient_id", "ici_start_date"]]
    result = run_response(frames["lesions"], clinical)
    concordance = concordance_table(result.kinetics)
    inputs = ReportInputs(
        lesions=frames["lesions"],
        kinetics=result.kinetics,
        response=result.response,
        concordance=concordance,
        clinical=clinical,
    )
    label_cols = [
        c
        for c in result.kinetics.columns
        if c.startswith("hpd_") and not c.endswith(("_reason", "_probability", "_stable"))
    ]
    assert inputs.definitions == [c[4:] for c in label_cols]
    summary = label_summary(inputs).set_index("definition")
    for col in label_cols:
        counts = result.kinetics[col].value_counts()
        assert summary.loc[col[4:], "n_hpd"] == counts.get("hpd", 0)
        assert summary.loc[col[4:], "n_no_hpd"] == counts.get("no_hpd", 0)
    # P01 grows 44 -> 88 mm between baseline and first evaluation: +100 % in the waterfall
    assert first_eval_change(inputs).set_index("patient_id").loc["P01", "pct"] == pytest.approx(100.0)
    path = write_report(tmp_path, inputs)
    assert len(re.findall(r"<img ", path.read_text(encoding="utf-8"))) == 3
    assert [len(re.findall(r"<img ", page)) for page in _pages(path).values()] == [1] * len(PATIENTS)
