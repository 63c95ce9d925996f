"""Early-progression HPD rules read from RECIST sums alone, no pre-baseline scan needed: Matos 2020 (RECIST
1.1 HPD) and Gandara 2021 (fast progression); specs/hpd_kinetics.md D7 and Example 11. Split from
response/hpd.py (issue 17), which registers them."""

from __future__ import annotations

from hpd_imaging.response.criteria import (
    Criterion,
    _any,
    _fmt,
    _t,
    pd1,
    ttf_criterion,
    value_criterion,
)
from hpd_imaging.response.records import PatientFacts
from hpd_imaging.settings.hpd import ResponseConfig


def _matos(f: PatientFacts, cfg: ResponseConfig, key: str) -> list[Criterion]:
    win = _t(cfg, key, "window_days")
    day = f.days_ici_to_first_eval
    in_window = (
        Criterion(None, "first evaluation date unknown")
        if day is None
        else Criterion(
            win.holds(day),
            f"first evaluation on day {day} {'within' if win.holds(day) else 'outside'} "
            f"the {win.text()} d window",
        )
    )
    change = f.sld_change_pct
    a = value_criterion("target sum change (branch A)", change, _t(cfg, key, "pct_a"), " %")
    rule = cfg.matos_new_lesion_rule
    if rule == "two_in_involved_or_new_organ":
        multiple = f.max_new_in_involved_organ >= 2 or f.n_new_organs_first_eval >= 1
    elif rule == "new_lesions_in_two_organs":
        multiple = f.n_organs_with_new >= 2
    else:
        multiple = f.n_new_first_eval >= 2
    b_pct = value_criterion("target sum change (branch B)", change, _t(cfg, key, "pct_b"), " %")
    b_value = None if b_pct.value is None else (b_pct.value and multiple)
    b = Criterion(
        b_value,
        f"{b_pct.text} with{'' if multiple else 'out'} multiple new lesions ({rule}: "
        f"{f.n_new_first_eval} new, {f.n_new_organs_first_eval} new organ(s))",
    )
    out = [
        in_window,
        _any([a, b]),
        value_criterion(
            "absolute target sum change", f.sld_change_mm, _t(cfg, key, "min_abs_increase_mm"), " mm"
        ),
    ]
    if cfg.require_pd1(key, True):
        out.insert(0, pd1(f, cfg))
    if cfg.matos_require_ttf:
        out.append(ttf_criterion(f, cfg))
    return out


def _gandara(f: PatientFacts, cfg: ResponseConfig, key: str) -> list[Criterion]:
    scan_win, death_win = _t(cfg, key, "scan_window_days"), _t(cfg, key, "death_window_days")
    increase = _t(cfg, key, "sld_increase_pct")
    if f.post_baseline_scans:
        early = [(d, p) for d, p in f.post_baseline_scans if scan_win.holds(d)]
        for d, p in early:
            if p is not None and value_criterion("", p, increase).value:
                return [
                    Criterion(
                        True,
                        f"SLD {_fmt(p, 1)} % {increase.text()} % on day {d} "
                        f"(scan window {scan_win.text()} d)",
                    )
                ]
        if not early:
            return [
                Criterion(
                    False,
                    f"no scan within {scan_win.text()} d of treatment start (first on day "
                    f"{f.post_baseline_scans[0][0]})",
                )
            ]
        best = max((p for _, p in early if p is not None), default=None)
        if best is None:  # every early scan has an unknown sum (a target not measured): cannot tell
            return [Criterion(None, f"SLD change unknown on every scan within {scan_win.text()} d")]
        return [
            Criterion(
                False,
                f"largest SLD change within {scan_win.text()} d is {_fmt(best, 1)} %, not "
                f"{increase.text()} %",
            )
        ]
    if f.death_days is None:
        return [Criterion(None, "no post-baseline scan and no death recorded")]
    from_pd = f.death_from_progression
    if from_pd is None:
        return [Criterion(None, f"death on day {f.death_days} without a post-baseline scan, cause unknown")]
    met = bool(from_pd) and death_win.holds(f.death_days)
    return [
        Criterion(
            met,
            f"no post-baseline scan; death {'from' if from_pd else 'not from'} progression on day "
            f"{f.death_days} ({death_win.text()} d window)",
        )
    ]
