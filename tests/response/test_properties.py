"""Property-based invariants (hypothesis) of the kinetic metrics and of the whole response stage."""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
from hpd_examples import MEAS_COLUMNS, lesion
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpd_imaging.response import ResponseConfig, run_response, tgr_pct_per_month, write_outputs

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BASE = dt.date(2024, 3, 1)


def dates(gap_ref: int, gap_exp: int) -> tuple[str, str, str]:
    return (
        (BASE - dt.timedelta(days=gap_ref)).isoformat(),
        BASE.isoformat(),
        (BASE + dt.timedelta(days=gap_exp)).isoformat(),
    )


@FAST
@given(
    d0=st.floats(10, 150),
    k_ref=st.floats(0.5, 2.0),
    k_exp=st.floats(0.3, 3.0),
    gap_ref=st.integers(20, 120),
    gap_exp=st.integers(20, 120),
    n=st.integers(1, 3),
)
def test_even_sphere_growth_diameter_tgr_equals_volumetric_tgr(d0, k_ref, k_exp, gap_ref, gap_exp, n):
    """Spheres all scaled by the same factor: SLD scales by k, total volume by k^3 -> equal TGR."""
    d = dates(gap_ref, gap_exp)
    rows = []
    for i in range(n):
        size = d0 * (1 + 0.3 * i)
        diam = (size, size * k_ref, size * k_ref * k_exp)
        rows += lesion(
            "p",
            f"L{i}",
            dict(zip(d, diam, strict=True)),
            organ=f"o{i}",
            volumes={t: math.pi / 6 * x**3 for t, x in zip(d, diam, strict=True)},
        )
    clin = pd.DataFrame([{"patient_id": "p", "ici_start_date": (BASE + dt.timedelta(days=1)).isoformat()}])
    r = run_response(pd.DataFrame(rows, columns=MEAS_COLUMNS), clin, ResponseConfig()).kinetics.iloc[0]
    for a, b in (
        ("tgr_ref_pct_per_month", "vol_tgr_ref_pct_per_month"),
        ("tgr_exp_pct_per_month", "vol_tgr_exp_pct_per_month"),
    ):
        if r[a] is None:  # overflow of a huge growth rate: both undefined
            assert r[b] is None
        else:
            assert math.isclose(r[a], r[b], rel_tol=1e-7, abs_tol=1e-7)


@FAST
@given(
    s=st.lists(st.floats(12, 100), min_size=3, max_size=3),
    scale=st.floats(1.0, 4.0),
    gap_ref=st.integers(20, 120),
    gap_exp=st.integers(20, 120),
)
def test_scaling_every_diameter_leaves_ratios_unchanged(s, scale, gap_ref, gap_exp):
    d = dates(gap_ref, gap_exp)
    clin = pd.DataFrame([{"patient_id": "p", "ici_start_date": (BASE + dt.timedelta(days=1)).isoformat()}])

    def kin(factor: float) -> pd.Series:
        rows = lesion("p", "T1", dict(zip(d, [x * factor for x in s], strict=True)))
        return run_response(pd.DataFrame(rows, columns=MEAS_COLUMNS), clin, ResponseConfig()).kinetics.iloc[0]

    a, b = kin(1.0), kin(scale)
    for col in (
        "tgr_ref_pct_per_month",
        "tgr_exp_pct_per_month",
        "tgr_ratio",
        "delta_tgr",
        "tgk_ratio",
        "pace_ratio",
        "sld_change_pct",
    ):
        if a[col] is None:
            assert b[col] is None, col
        else:
            assert math.isclose(a[col], b[col], rel_tol=1e-9, abs_tol=1e-9), col
    assert math.isclose(
        b["tgk_exp_mm_per_month"], scale * a["tgk_exp_mm_per_month"], rel_tol=1e-9, abs_tol=1e-9
    )


size = st.one_of(st.just(0.0), st.floats(0, 300, allow_nan=False), st.just(1e-9))
scan_offsets = st.lists(st.integers(-200, 300), min_size=1, max_size=5, unique=True)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_no_inf_or_nan_anywhere(data, tmp_path_factory):
    rows = []
    clin = []
    for p in range(data.draw(st.integers(1, 3))):
        pid = f"p{p}"
        offsets = data.draw(scan_offsets)
        for li in range(data.draw(st.integers(1, 3))):
            node = data.draw(st.booleans())
            for off in offsets:
                if data.draw(st.booleans()) or off == offsets[0]:
                    rows.append(
                        {
                            "patient_id": pid,
                            "scan_date": (BASE + dt.timedelta(days=off)).isoformat(),
                            "lesion_id": f"L{li}",
                            "organ": data.draw(st.sampled_from(["lung", "liver"])),
                            "is_lymph_node": node,
                            "longest_axial_diameter_mm": data.draw(size),
                            "short_axis_mm": data.draw(size),
                            "volume_mm3": data.draw(st.one_of(st.none(), size)),
                        }
                    )
        clin.append(
            {
                "patient_id": pid,
                "ici_start_date": BASE.isoformat(),
                "treatment_stop_date": data.draw(st.sampled_from(["", "2024-04-01"])),
            }
        )
    cfg = ResponseConfig(
        nonpositive_reference_policy=data.draw(
            st.sampled_from(
                ["inequality_if_exp_positive", "strict_ratio", "not_evaluable", "infinite_acceleration"]
            )
        ),
        kinetic_basis=data.draw(
            st.sampled_from(
                ["sld_power3", "sum_ld_cubed", "volume_power1", "sphere_equiv_diameter_from_volume"]
            )
        ),
    )
    result = run_response(pd.DataFrame(rows, columns=MEAS_COLUMNS), pd.DataFrame(clin), cfg)
    for df in (result.kinetics, result.response, result.targets, result.growth):
        for value in df.to_numpy().ravel():
            assert not (isinstance(value, float) and not math.isfinite(value)), value
    out = tmp_path_factory.mktemp("props") / "kinetics.csv"
    paths = write_outputs(result, out)
    for path in paths.values():
        cells = pd.read_csv(path, dtype=str, keep_default_na=False).to_numpy().ravel()
        bad = {"inf", "-inf", "+inf", "nan", "infinity", "-infinity"}
        assert not [c for c in cells if c.strip().lower() in bad], path
    labels = {
        v
        for c in result.kinetics.columns
        if c.startswith("hpd_") and not c.endswith(("_reason", "_probability", "_stable"))  # issue 17 columns
        for v in result.kinetics[c]
    }
    assert labels <= {"hpd", "no_hpd", "not_evaluable"}


@given(d0=st.floats(0, 1e6), d1=st.floats(0, 1e6), t=st.floats(1e-3, 100), e=st.sampled_from([1.0, 3.0]))
def test_tgr_formula_edge_cases(d0, d1, t, e):
    value = tgr_pct_per_month(d0, d1, t, e)
    if d0 == 0 and d1 == 0:
        assert value is None
    elif d0 == 0:
        assert value == math.inf
    elif d1 == 0:
        assert value == -100.0
    else:
        assert value is not None and value >= -100.0
        if value != math.inf and math.isfinite(value) and abs(math.log(d1) - math.log(d0)) < 50:
            assert math.isclose(value, 100 * ((d1 / d0) ** (e / t) - 1), rel_tol=1e-6, abs_tol=1e-6)
