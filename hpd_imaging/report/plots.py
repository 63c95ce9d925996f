"""Figures of the HTML report, each returned as PNG bytes (embedded as base64 so the report works offline).

matplotlib runs on the non-interactive Agg backend through the object-oriented API (``Figure`` +
``FigureCanvasAgg``): no pyplot global state, nothing to leak between figures, safe in worker processes.
A figure is dropped right after it is rendered (nothing registers it: the garbage collector frees it). PNG
metadata is stripped so the bytes depend only on the data (reruns give identical reports).
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.dates import AutoDateLocator, DateFormatter
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from hpd_imaging.report.inputs import (
    LesionSnapshot,
    ReportInputs,
    burden_series,
    change_from_baseline,
    first_eval_change,
    ici_start,
    kinetics_row,
    to_date,
    to_float,
)
from hpd_imaging.settings.base import MONTH_DAYS

logger = logging.getLogger(__name__)

LABEL_COLOURS = {"hpd": "#c0392b", "no_hpd": "#2471a3", "not_evaluable": "#7f8c8d"}
DPI = 90


UNSEGMENTED_LABEL = "exam without segmentation: lesions set to 0"


def unsegmented_exams(lesions: pd.DataFrame | None) -> set[tuple[str, dt.date | None]]:
    """(patient, scan date) of exams with no mask at all: every lesion row there has no ``mask_source`` (the
    pipeline read a follow-up CT without segmentation as "no visible lesion", run.follow_up_without_mask)."""
    if lesions is None or not len(lesions) or "mask_source" not in lesions.columns:
        return set()
    out: set[tuple[str, dt.date | None]] = set()
    for (pid, date), part in lesions.groupby(["patient_id", "scan_date"], sort=False):
        sources = [
            str(v).strip() for v in part["mask_source"] if v is not None and str(v) not in ("nan", "<NA>")
        ]
        if not any(sources):
            out.add((str(pid), to_date(date)))
    return out


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    # no fig.clear(): nothing registers the figure (no pyplot), the garbage collector frees it once dropped,
    # and clearing every axes first cost a sixth of a patient page's figure time
    return buf.getvalue()


def burden_curves(inputs: ReportInputs, patient_id: str) -> bytes | None:
    """Sum of target diameters and target volume over time, ICI start marked, pre/post slopes annotated.

    The dashed segments join pre-baseline -> baseline and baseline -> first evaluation, i.e. exactly the two
    periods the kinetics (TGR/TGK) are computed over; their legends quote the kinetics table's numbers.
    """
    series = burden_series(inputs, patient_id)
    if not len(series):
        return None
    kin = kinetics_row(inputs, patient_id)
    ici = ici_start(inputs, patient_id)
    has_volume = bool(np.isfinite(series["volume_mm3"]).any())
    n_panels = 2 if has_volume else 1
    fig = Figure(figsize=(9.0 if has_volume else 5.0, BURDEN_HEIGHT_IN))
    axes = fig.subplots(1, n_panels, squeeze=False, gridspec_kw=_burden_margins(fig, n_panels))[0]
    dates = [to_date(kin.get(c)) for c in ("pre_baseline_date", "baseline_date", "first_eval_date")]
    panels: list[tuple[str, str, str, str | None, str]] = [
        ("sld_mm", "Sum of diameters (mm)", "tgr", "tgk", "mm")
    ]
    if has_volume:
        panels.append(("volume_mm3", "Target volume (mm³)", "vol_tgr", None, "mm3"))
    for ax, (col, ylabel, tgr_prefix, tgk_prefix, _unit) in zip(axes, panels, strict=False):
        ok = series[np.isfinite(series[col])]
        ax.plot(list(ok["scan_date"]), ok[col], "o-", color="#34495e", lw=1.5, label="measured")
        by_date = dict(zip(ok["scan_date"], ok[col], strict=True))
        for (a, b), period in zip(((dates[0], dates[1]), (dates[1], dates[2])), ("ref", "exp"), strict=True):
            if a in by_date and b in by_date:
                tgr = to_float(kin.get(f"{tgr_prefix}_{period}_pct_per_month"))
                tgk = to_float(kin.get(f"{tgk_prefix}_{period}_mm_per_month")) if tgk_prefix else None
                parts = [f"TGR {tgr:+.1f} %/mo" if tgr is not None else ""]
                if tgk is not None:
                    parts.append(f"TGK {tgk:+.2f} mm/mo")
                name = "pre-ICI" if period == "ref" else "on ICI"
                ax.plot(
                    [a, b],
                    [by_date[a], by_date[b]],
                    "--",
                    lw=2.2,
                    color="#16a085" if period == "ref" else "#d35400",
                    label=": ".join([name, ", ".join(p for p in parts if p)]).rstrip(": "),
                )
        empty = [d for (p, d) in unsegmented_exams(inputs.lesions) if p == patient_id and d in by_date]
        if empty:
            ax.plot(
                empty,
                [by_date[d] for d in empty],
                "X",
                ms=9,
                mfc="white",
                mec="#c0392b",
                mew=1.5,
                ls="none",
                label=UNSEGMENTED_LABEL,
            )
        if ici is not None:
            ax.axvline(ici, color="#8e44ad", lw=1.2, ls=":", label=f"ICI start {ici.isoformat()}")
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
        # dates as YYYY-MM-DD at most 6 ticks: AutoDateLocator's default format and tick count cost a third of
        # the figure (tick objects and their text layout) and say no more
        locator = AutoDateLocator(minticks=3, maxticks=6)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(DateFormatter("%Y-%m-%d"))
    fig.suptitle(f"Tumour burden: {patient_id}", fontsize=10)
    return _png(fig)


#: burden figure: fixed margins in inches, wide enough for a 7-digit tick label, the axis label and 30°
#: dates. tight_layout computed the same kind of margins from every text's extent, half of the figure's
#: time (0.3 s of 0.6 s per patient; a 500-patient report waited minutes for it)
BURDEN_HEIGHT_IN = 3.2
_LEFT_IN, _RIGHT_IN, _BOTTOM_IN, _TOP_IN, _GAP_IN = 0.95, 0.15, 0.8, 0.4, 1.05


def _burden_margins(fig: Figure, n: int) -> dict[str, float]:
    width_in, height_in = fig.get_size_inches()
    axes_in = (width_in - _LEFT_IN - _RIGHT_IN - (n - 1) * _GAP_IN) / n
    return {
        "left": _LEFT_IN / width_in,
        "right": 1 - _RIGHT_IN / width_in,
        "bottom": _BOTTOM_IN / height_in,
        "top": 1 - _TOP_IN / height_in,
        "wspace": _GAP_IN / axes_in,
    }


def lesion_strip(snapshots: Sequence[LesionSnapshot]) -> bytes:
    """One lesion at each of its scans: HU crop (lung-soft tissue window), outline, long and short axis."""
    snaps = sorted(snapshots, key=lambda s: s.scan_date)
    n = len(snaps)
    width_in, height_in = max(2.3 * n, 5.0), 3.0
    fig = Figure(figsize=(width_in, height_in))
    # fixed margins (inches) where tight_layout measured every title: room for the suptitle and the two-line
    # titles above, the legend below; the images keep their aspect inside their boxes either way
    side_in, gap_in = 0.1, 0.2
    margins = {
        "left": side_in / width_in,
        "right": 1 - side_in / width_in,
        "bottom": 0.3 / height_in,
        "top": 1 - 0.55 / height_in,
        "wspace": gap_in / ((width_in - 2 * side_in - (n - 1) * gap_in) / n),
    }
    axes = fig.subplots(1, n, squeeze=False, gridspec_kw=margins)[0]
    for ax, snap in zip(axes, snaps, strict=True):
        rs, cs = snap.pixel_spacing_mm
        h, w = snap.hu.shape
        extent = (-0.5, w - 0.5, h - 0.5, -0.5)
        ax.imshow(
            snap.hu, cmap="gray", vmin=-1000, vmax=400, extent=extent, aspect=rs / cs, interpolation="nearest"
        )
        if snap.mask.any():
            # contour's default coordinates are pixel centres (x = column, y = row), as the axes here
            ax.contour(snap.mask.astype(float), levels=[0.5], colors=["#f1c40f"], linewidths=1.0)
        for axis, colour in ((snap.long_axis_xy, "#e74c3c"), (snap.short_axis_xy, "#3498db")):
            if axis is not None:
                (x0, y0), (x1, y1) = axis
                ax.plot([x0, x1], [y0, y1], "-", color=colour, lw=1.6)
                ax.plot([x0, x1], [y0, y1], "o", color=colour, ms=2.5)
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
        la = f"LA {snap.long_axis_mm:.1f}" if snap.long_axis_mm is not None else ""
        sa = f"SA {snap.short_axis_mm:.1f} mm" if snap.short_axis_mm is not None else ""
        ax.set_title(f"{snap.scan_date.isoformat()}\n{la}  {sa}", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{snaps[0].patient_id} / {snaps[0].lesion_id}", fontsize=8)
    fig.legend(
        handles=[
            Line2D([], [], color="#e74c3c", lw=1.6, marker="o", ms=2.5, label="long axis (RECIST)"),
            Line2D([], [], color="#3498db", lw=1.6, marker="o", ms=2.5, label="short axis"),
            Line2D([], [], color="#f1c40f", lw=1.0, label="segmentation contour"),
        ],
        loc="lower center",
        ncol=3,
        fontsize=7,
        frameon=False,
    )
    return _png(fig)


def spider_plot(inputs: ReportInputs) -> bytes | None:
    """% change of the target sum from baseline over months since baseline, one line per patient.

    Colour = the patient's label under the primary definition; every line carries its patient ID at its last
    point (a reader must be able to tell which patient is which); exams read without segmentation (lesions set
    to 0) are marked with a hollow cross.
    """
    fig = Figure(figsize=(7.5, 4.6))
    ax = fig.subplots()
    drawn = 0
    label_col = "hpd_" + inputs.primary
    labels = dict(
        zip(inputs.kinetics["patient_id"].astype(str), inputs.kinetics[label_col].astype(str), strict=True)
    )
    empty = unsegmented_exams(inputs.lesions)
    any_empty = False
    ends: list[tuple[float, float, str, str]] = []
    for pid in inputs.patients:
        change = change_from_baseline(inputs, pid)
        if len(change) < 2:
            continue
        label = labels.get(pid, "not_evaluable")
        colour = LABEL_COLOURS.get(label, "k")
        months = change["days"].to_numpy(dtype=float) / MONTH_DAYS
        pct = change["pct"].to_numpy(dtype=float)
        ax.plot(months, pct, "o-", ms=3, lw=1.2, color=colour)
        baseline = to_date(kinetics_row(inputs, pid).get("baseline_date"))
        if baseline is not None:
            marks = [(d - baseline).days for p, d in empty if p == pid and d is not None]
            sel = np.isin(change["days"].to_numpy(), marks)
            if sel.any():
                any_empty = True
                ax.plot(months[sel], pct[sel], "X", ms=9, mfc="white", mec=colour, mew=1.5, ls="none")
        ends.append((float(months[-1]), float(pct[-1]), pid, colour))
        drawn += 1
    if not drawn:
        fig.clear()
        return None
    fontsize = 7 if len(ends) <= 30 else 5
    for x, y, pid, colour in ends:
        ax.annotate(
            pid,
            (x, y),
            xytext=(7, 0),
            textcoords="offset points",
            fontsize=fontsize,
            color=colour,
            va="center",
        )
    x_max = max(x for x, _, _, _ in ends)
    ax.set_xlim(right=x_max * 1.15 + 0.1)  # room for the patient labels
    for value, style in ((20, "--"), (-30, "--"), (0, "-")):
        ax.axhline(value, color="#999999", lw=0.8, ls=style)
    for label, colour in LABEL_COLOURS.items():
        ax.plot([], [], color=colour, label=f"{inputs.primary}: {label}")
    if any_empty:
        ax.plot([], [], "X", ms=8, mfc="white", mec="#555555", ls="none", label=UNSEGMENTED_LABEL)
    ax.set_xlabel("Months since baseline")
    ax.set_ylabel("Change in sum of diameters (%)")
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def waterfall_plot(inputs: ReportInputs) -> bytes | None:
    """Per patient % change of the target sum from baseline to first evaluation, sorted, coloured by label."""
    data = first_eval_change(inputs)
    if not len(data):
        return None
    n = len(data)
    fontsize = 8 if n <= 40 else 6
    fig = Figure(figsize=(min(max(5.0, 0.32 * n + 2.0), 24.0), 4.4))
    ax = fig.subplots()
    x = np.arange(n)
    ax.bar(x, data["pct"], color=[LABEL_COLOURS.get(v, "k") for v in data["label"]])
    ax.axhline(20, color="#999999", lw=0.8, ls="--")
    ax.axhline(-30, color="#999999", lw=0.8, ls="--")
    ax.axhline(0, color="#555555", lw=0.8)
    ax.set_xticks(x, data["patient_id"], rotation=45, ha="right", rotation_mode="anchor", fontsize=fontsize)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylabel("Change at first evaluation (%)")
    ax.legend(
        handles=[Patch(color=c, label=f"{inputs.primary}: {lab}") for lab, c in LABEL_COLOURS.items()],
        fontsize=7,
    )
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def concordance_heatmap(concordance: pd.DataFrame) -> bytes | None:
    """Jaccard index of the HPD sets of every pair of definitions (symmetric; diagonal 1)."""
    if not len(concordance):
        return None
    # order of first appearance (the response stage lists definitions in registry order)
    pairs = zip(concordance["definition_a"].astype(str), concordance["definition_b"].astype(str), strict=True)
    names = list(dict.fromkeys(name for pair in pairs for name in pair))
    index = {n: i for i, n in enumerate(names)}
    m = np.full((len(names), len(names)), np.nan)
    np.fill_diagonal(m, 1.0)
    for a, b, j in zip(
        concordance["definition_a"], concordance["definition_b"], concordance["jaccard"], strict=True
    ):
        value = to_float(j)
        if value is not None:
            m[index[str(a)], index[str(b)]] = m[index[str(b)], index[str(a)]] = value
    size = min(1.5 + 0.3 * len(names), 8.0)
    fig = Figure(figsize=(size + 1.5, size))
    ax = fig.subplots()
    cmap = ListedColormap(
        np.array([[1 - t, 1 - 0.6 * t, 1 - 0.2 * t, 1] for t in np.linspace(0, 1, 64)])
    ).with_extremes(bad="#dddddd")
    im = ax.imshow(np.ma.masked_invalid(m), cmap=cmap, vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    if len(names) <= 24:
        for i in range(len(names)):
            for k in range(len(names)):
                if np.isfinite(m[i, k]):
                    ax.text(
                        k,
                        i,
                        f"{m[i, k]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if m[i, k] > 0.6 else "black",
                    )
    fig.colorbar(im, ax=ax, label="Jaccard index of HPD sets", shrink=0.8)
    undefined = not np.isfinite(m).all()
    fig.tight_layout(rect=(0, 0.05 if undefined else 0, 1, 1))
    if undefined:
        grey = "grey: Jaccard undefined (no patient HPD under either definition)"
        fig.legend(
            handles=[Patch(color="#dddddd", label=grey)], loc="lower center", fontsize=8, frameon=False
        )
    return _png(fig)


def at_risk(times: np.ndarray, t: float) -> int:
    """Numbers at risk at time ``t``: patients whose event or censoring time is at or after ``t`` (the
    convention of survival tables: a patient dying or censored at ``t`` is still at risk at ``t``)."""
    return int((np.asarray(times, dtype=float) >= t).sum())


KM_COLOURS = {"hpd": LABEL_COLOURS["hpd"], "no_hpd": LABEL_COLOURS["no_hpd"]}


def km_plot(landmark: pd.DataFrame, labels: dict[str, str], title: str, endpoint: str = "os") -> bytes | None:
    """Kaplan-Meier curves (hpd vs no_hpd) from the first evaluation, 95 % CI bands, censoring ticks and the
    numbers at risk under the axis.

    ``landmark``: the outcome stage's landmark table (``patient_id``, ``time_months``, ``event``,
    ``excluded_reason``); ``labels``: patient -> ``hpd``/``no_hpd`` (others are not drawn). The estimator is
    lifelines'; the drawing is done here on a matplotlib Figure (lifelines' own plotting uses pyplot's global
    state, which this module avoids).
    """
    from lifelines import KaplanMeierFitter

    usable = landmark[landmark["excluded_reason"].isna()]
    groups: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for group in ("hpd", "no_hpd"):
        sel = [labels.get(str(p)) == group for p in usable["patient_id"]]
        part = usable[sel]
        if len(part):
            groups[group] = (
                part["time_months"].astype(float).to_numpy(),
                part["event"].astype(bool).to_numpy(),
            )
    if not groups:
        return None
    t_max = max(float(t.max()) for t, _ in groups.values()) or 1.0
    step = next(s for s in (1, 2, 3, 6, 12, 24, 48, 1e9) if t_max / s <= 8)
    ticks = np.arange(0.0, t_max + step, step)  # the last tick at or after the last time
    fig = Figure(figsize=(6.0, 4.2))
    ax = fig.add_axes((0.12, 0.30, 0.84, 0.62))
    for group, (times, events) in groups.items():
        km = KaplanMeierFitter().fit(times, events)
        sf = km.survival_function_.iloc[:, 0]
        ci = km.confidence_interval_
        colour = KM_COLOURS[group]
        name = "HPD" if group == "hpd" else "no HPD"
        n_events = int(events.sum())
        ax.step(
            sf.index,
            sf.to_numpy(),
            where="post",
            color=colour,
            lw=1.6,
            label=f"{name} (n={len(times)}, {n_events} event{'' if n_events == 1 else 's'})",
        )
        ax.fill_between(ci.index, ci.iloc[:, 0], ci.iloc[:, 1], step="post", color=colour, alpha=0.12, lw=0)
        censored = times[~events]
        if len(censored):
            ax.plot(censored, km.survival_function_at_times(censored).to_numpy(), "|", color=colour, ms=8)
    ax.set_xlim(0, float(ticks[-1]) * 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xticks(ticks)
    what = "overall" if endpoint == "os" else "progression-free"
    ax.set_xlabel(f"Months from first evaluation (landmark); {what} survival")
    ax.set_ylabel("Survival probability")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(title, fontsize=9)
    # numbers at risk (alive and not yet censored at each tick) in rows under the axis
    fig.text(0.01, 0.115, "At risk", fontsize=7, weight="bold")
    for row, (group, (times, _events)) in enumerate(groups.items()):
        y = 0.07 - 0.04 * row
        fig.text(0.01, y, "HPD" if group == "hpd" else "no HPD", fontsize=7, color=KM_COLOURS[group])
        for tick in ticks:
            x_fig = ax.transData.transform((tick, 0))[0]
            x = fig.transFigure.inverted().transform((x_fig, 0))[0]
            fig.text(x, y, str(at_risk(times, tick)), fontsize=7, ha="center", color=KM_COLOURS[group])
    return _png(fig)
