"""Registry of published HPD definitions, evaluated side by side (specs/hpd_kinetics.md section 2, issue #11).

Each entry is an :class:`HpdDefinition`: key, citation, the inputs without which it is not evaluable, its
default thresholds (overridable in pipelines/hpd_definitions.yaml) and a rule function. Criteria are combined
in
three-valued (Kleene) logic: a criterion is True, False or None (unknown), so that a definition is ``no_hpd``
as
soon as one required criterion is known to fail, ``hpd`` when all hold, and ``not_evaluable`` otherwise — and
a
missing *scan* a definition needs (e.g. no pre-baseline CT for a TGR definition) makes it ``not_evaluable``
outright, as the spec asks (section 8: "emit NE with a reason instead of False when inputs are missing").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hpd_imaging.domain import HpdAssessment, HpdLabel
from hpd_imaging.response.criteria import (
    Criterion,
    Rule,
    _any,
    _fmt,
    _t,
    ecog_criterion,
    pd1,
    ratio_criterion,
    ttf_criterion,
    value_criterion,
)
from hpd_imaging.response.early import _gandara, _matos
from hpd_imaging.response.records import PatientFacts
from hpd_imaging.settings.hpd import DEFINITION_THRESHOLDS, ResponseConfig, Threshold, compare

__all__ = [
    "DEFINITIONS",
    "Criterion",
    "HpdDefinition",
    "Rule",
    "ecog_criterion",
    "evaluate",
    "evaluate_all",
    "evaluate_label",
    "pd1",
    "ratio_criterion",
    "ttf_criterion",
    "value_criterion",
]


@dataclass(frozen=True)
class HpdDefinition:
    key: str
    citation: str
    required_inputs: tuple[str, ...]
    rule: Rule
    default_thresholds: dict[str, Threshold] = field(default_factory=dict)
    summary: str = ""  # the rule in words (docs/hpd_definitions.md)
    optional_inputs: tuple[str, ...] = ()
    combine: str = "all"  # all criteria must hold


# --------------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------------


def _growth(f: PatientFacts, cfg: ResponseConfig, basis: str = "") -> tuple[float | None, float | None]:
    """(change over the experimental period, its minimum detectable change) for the MDC guard; the TGR's
    own kinetic basis decides between the diameter sum and the volume when ``basis`` is not given."""
    if not cfg.stability.mdc_guard:
        return None, None
    if not basis:
        basis = (
            "volume" if cfg.kinetic_basis in ("volume_power1", "sphere_equiv_diameter_from_volume") else "sld"
        )
    if basis == "volume":
        return f.volume_change_mm3, f.volume_change_mdc_mm3
    return f.sld_change_mm, f.sld_change_mdc_mm


def _champiat_like(f: PatientFacts, cfg: ResponseConfig, key: str) -> list[Criterion]:
    return [
        pd1(f, cfg),
        ratio_criterion(
            "TGR", f.tgr_exp, f.tgr_ref, _t(cfg, key, "tgr_ratio"), cfg.policy(key), _growth(f, cfg)
        ),
    ]


def _saada_like(f: PatientFacts, cfg: ResponseConfig, key: str) -> list[Criterion]:
    out = [
        ratio_criterion(
            "TGK", f.tgk_exp, f.tgk_ref, _t(cfg, key, "tgk_ratio"), cfg.policy(key), _growth(f, cfg, "sld")
        )
    ]
    if cfg.require_pd1(key, False):
        out.insert(0, pd1(f, cfg))
    return out


def _delta_tgr(
    f: PatientFacts, cfg: ResponseConfig, key: str, with_pd1: bool, vol: bool = False
) -> list[Criterion]:
    value = f.vol_delta_tgr if vol else f.delta_tgr
    out = [value_criterion("volumetric ΔTGR" if vol else "ΔTGR", value, _t(cfg, key, "delta_tgr"), " %/mo")]
    if with_pd1 and cfg.require_pd1(key, True):
        out.insert(0, pd1(f, cfg, volumetric=vol))
    return out


def _kato(f: PatientFacts, cfg: ResponseConfig, key: str) -> list[Criterion]:
    unit = " %/mo" if cfg.kato_pace_basis == "relative" else " mm/mo"
    pace = ratio_criterion(
        "pace", f.pace_exp, f.pace_ref, _t(cfg, key, "pace_ratio"), cfg.policy(key), _growth(f, cfg, "sld")
    )
    raw = pace
    pace = Criterion(
        raw.value, lambda: f"{raw.text} (pace {_fmt(f.pace_exp, 2)} vs {_fmt(f.pace_ref, 2)}{unit})"
    )
    return [
        ttf_criterion(f, cfg),
        value_criterion(
            "tumour burden change", f.burden_change_pct, _t(cfg, key, "burden_increase_pct"), " %"
        ),
        pace,
    ]


def _lo_russo(f: PatientFacts, cfg: ResponseConfig, key: str) -> list[Criterion]:
    items = [
        ttf_criterion(f, cfg),
        value_criterion("SLD change", f.sld_change_pct, _t(cfg, key, "sld_increase_pct"), " %"),
        value_criterion(
            "new lesions in an involved organ",
            float(f.max_new_in_involved_organ),
            _t(cfg, key, "new_in_involved_organ"),
        ),
        value_criterion(
            "organs newly involved", float(f.n_new_organs_first_eval), _t(cfg, key, "new_organs")
        ),
        ecog_criterion(f, _t(cfg, key, "ecog_worsening")),
    ]
    n_met = sum(1 for c in items if c.value is True)
    n_unknown = sum(1 for c in items if c.value is None)
    need = _t(cfg, key, "n_criteria")
    if need.holds(n_met):
        value: bool | None = True
    elif not need.holds(n_met + n_unknown):
        value = False
    else:
        value = None

    def text() -> str:
        detail = ", ".join(
            f"{c.text} [{'✓' if c.value else '✗' if c.value is False else '?'}]" for c in items
        )
        return f"{n_met} of 5 criteria met ({n_unknown} unknown), need {need.text()}: {detail}"

    count = Criterion(value, text)
    return [pd1(f, cfg), count] if cfg.require_pd1(key, True) else [count]


def _kim_window(f: PatientFacts, cfg: ResponseConfig, key: str) -> Criterion | None:
    win = _t(cfg, key, "window_days")
    if f.days_pre_baseline_to_ici is not None and not win.holds(f.days_pre_baseline_to_ici):
        return Criterion(
            None,
            f"pre-baseline scan {f.days_pre_baseline_to_ici} d before ICI outside the {win.text()} d window",
        )
    if f.days_ici_to_first_eval is not None and not win.holds(f.days_ici_to_first_eval):
        return Criterion(
            None, f"first evaluation {f.days_ici_to_first_eval} d after ICI outside the {win.text()} d window"
        )
    return None


def _kim(part: str) -> Rule:
    def rule(f: PatientFacts, cfg: ResponseConfig, key: str) -> list[Criterion]:
        window = _kim_window(f, cfg, key)
        if window is not None:
            return [window]
        policy = cfg.policy(key)
        tgk = ratio_criterion(
            "TGK", f.tgk_exp, f.tgk_ref, _t(cfg, key, "tgk_ratio"), policy, _growth(f, cfg, "sld")
        )
        tgr = ratio_criterion("TGR", f.tgr_exp, f.tgr_ref, _t(cfg, key, "tgr_ratio"), policy, _growth(f, cfg))
        ttf = ttf_criterion(f, cfg)
        if part == "tgk":
            return [tgk]
        if part == "tgr":
            return [tgr]
        if part == "ttf":
            return [ttf]
        if cfg.kim_composite == "all_of":
            return [tgk, tgr, ttf]
        if cfg.kim_composite == "any_of":
            return [_any([tgk, tgr, ttf])]
        return [
            _any([tgk, tgr]),
            ttf,
            pd1(f, cfg),
        ]  # reconstruction (the paper's Boolean form is unconfirmed)

    return rule


def _sasaki(f: PatientFacts, cfg: ResponseConfig, key: str) -> list[Criterion]:
    return [
        ratio_criterion(
            "TGK", f.tgk_exp, f.tgk_ref, _t(cfg, key, "tgk_ratio"), cfg.policy(key), _growth(f, cfg, "sld")
        ),
        value_criterion(
            "tumour burden change", f.burden_change_pct, _t(cfg, key, "burden_increase_pct"), " %"
        ),
    ]


def _tunali(f: PatientFacts, cfg: ResponseConfig, key: str) -> list[Criterion]:
    return [*_champiat_like(f, cfg, key), ttf_criterion(f, cfg)]


def _kim_y(f: PatientFacts, cfg: ResponseConfig, key: str) -> list[Criterion]:
    if cfg.kim_y_tgk_basis == "volume":
        tgk = ratio_criterion(
            "volumetric TGK",
            f.vol_tgk_exp,
            f.vol_tgk_ref,
            _t(cfg, key, "tgk_ratio"),
            cfg.policy(key),
            _growth(f, cfg, "volume"),
        )
    else:
        tgk = ratio_criterion(
            "TGK", f.tgk_exp, f.tgk_ref, _t(cfg, key, "tgk_ratio"), cfg.policy(key), _growth(f, cfg, "sld")
        )
    return [
        ttf_criterion(f, cfg),
        tgk,
        value_criterion(
            "tumour volume change", f.volume_change_pct, _t(cfg, key, "volume_increase_pct"), " %"
        ),
    ]


def _vol_champiat(f: PatientFacts, cfg: ResponseConfig, key: str) -> list[Criterion]:
    return [
        pd1(f, cfg, volumetric=True),
        ratio_criterion(
            "volumetric TGR",
            f.vol_tgr_exp,
            f.vol_tgr_ref,
            _t(cfg, key, "tgr_ratio"),
            cfg.policy(key),
            _growth(f, cfg, "volume"),
        ),
    ]


def _vol_saada(f: PatientFacts, cfg: ResponseConfig, key: str) -> list[Criterion]:
    out = [
        ratio_criterion(
            "volumetric TGK",
            f.vol_tgk_exp,
            f.vol_tgk_ref,
            _t(cfg, key, "tgk_ratio"),
            cfg.policy(key),
            _growth(f, cfg, "volume"),
        )
    ]
    if cfg.require_pd1(key, False):
        out.insert(0, pd1(f, cfg, volumetric=True))
    return out


# --------------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------------


KINETIC = ("ici_start_date", "pre_baseline_scan", "baseline_targets", "first_eval_scan")
FIRST_EVAL = ("ici_start_date", "baseline_targets", "first_eval_scan")
VOLUMETRIC = (*KINETIC, "volumes")

_ENTRIES = [
    HpdDefinition(
        "champiat2017",
        "Champiat S et al. Clin Cancer Res 2017;23:1920-1928 (doi:10.1158/1078-0432.CCR-16-1741 [M])",
        KINETIC,
        _champiat_like,
        DEFINITION_THRESHOLDS["champiat2017"],
        "RECIST PD at first evaluation AND TGR_exp >= 2 x TGR_ref (inequality form when TGR_ref <= 0)",
    ),
    HpdDefinition(
        "kanjanapan2019",
        "Kanjanapan Y et al. Cancer 2019 [S: Adashek 2019; Brambilla 2020 tables]",
        KINETIC,
        _champiat_like,
        DEFINITION_THRESHOLDS["kanjanapan2019"],
        "same rule as Champiat 2017: RECIST PD at first evaluation AND TGR ratio >= 2",
    ),
    HpdDefinition(
        "saada_bouzid2017",
        "Saada-Bouzid E et al. Ann Oncol 2017;28:1605-1611 (doi:10.1093/annonc/mdx178 [M])",
        KINETIC,
        _saada_like,
        DEFINITION_THRESHOLDS["saada_bouzid2017"],
        "TGK_exp / TGK_ref >= 2 (no RECIST PD prerequisite unless require_pd1)",
    ),
    HpdDefinition(
        "kato2017",
        "Kato S et al. Clin Cancer Res 2017;23:4242-4250, doi:10.1158/1078-0432.CCR-16-3133",
        KINETIC,
        _kato,
        DEFINITION_THRESHOLDS["kato2017"],
        "TTF < 2 months AND tumour burden > +50 % vs baseline AND progression pace > 2-fold",
        ("treatment_stop_date",),
    ),
    HpdDefinition(
        "ferrara2018",
        "Ferrara R et al. JAMA Oncol 2018;4:1543-1552, doi:10.1001/jamaoncol.2018.3676",
        KINETIC,
        lambda f, c, k: _delta_tgr(f, c, k, True),
        DEFINITION_THRESHOLDS["ferrara2018"],
        "RECIST PD at first evaluation AND ΔTGR = TGR_exp - TGR_ref > 50 %/month",
    ),
    HpdDefinition(
        "lo_russo2019",
        "Lo Russo G et al. Clin Cancer Res 2019;25:989-999, aacrjournals.org/clincancerres/article/25/3/989",
        FIRST_EVAL,
        _lo_russo,
        DEFINITION_THRESHOLDS["lo_russo2019"],
        "RECIST PD AND >= 3 of {TTF < 2 months; SLD >= +50 %; >= 2 new lesions in an involved organ; "
        "a new organ; ECOG worse by >= 2 within 2 months}",
        ("treatment_stop_date", "ecog_baseline", "ecog_worst_first_2_months"),
    ),
    HpdDefinition(
        "kim2019",
        "Kim CG et al. Ann Oncol 2019;30:1104-1113 (doi:10.1093/annonc/mdz123 [M])",
        KINETIC,
        _kim("composite"),
        DEFINITION_THRESHOLDS["kim2019"],
        "scans within +-12 weeks of ICI start; default composite (a reconstruction): (TGKR >= 2 OR "
        "TGRR >= 2) AND TTF < 2 months AND RECIST PD",
        ("treatment_stop_date",),
    ),
    HpdDefinition(
        "kim2019_tgk",
        "Kim CG et al. Ann Oncol 2019 (sub-label)",
        KINETIC,
        _kim("tgk"),
        DEFINITION_THRESHOLDS["kim2019_tgk"],
        "Kim CG sub-label: TGK ratio >= 2 with scans within +-12 weeks",
    ),
    HpdDefinition(
        "kim2019_tgr",
        "Kim CG et al. Ann Oncol 2019 (sub-label)",
        KINETIC,
        _kim("tgr"),
        DEFINITION_THRESHOLDS["kim2019_tgr"],
        "Kim CG sub-label: TGR ratio >= 2 with scans within +-12 weeks",
    ),
    HpdDefinition(
        "kim2019_ttf",
        "Kim CG et al. Ann Oncol 2019 (sub-label)",
        KINETIC,
        _kim("ttf"),
        DEFINITION_THRESHOLDS["kim2019_ttf"],
        "Kim CG sub-label: TTF < 2 months with scans within +-12 weeks",
        ("treatment_stop_date",),
    ),
    HpdDefinition(
        "matos2020",
        "Matos I et al. Clin Cancer Res 2020;26:1846-1855, aacrjournals.org/clincancerres/article/26/8/1846",
        FIRST_EVAL,
        _matos,
        DEFINITION_THRESHOLDS["matos2020"],
        "RECIST PD at a first evaluation within 8 weeks AND (target sum >= +40 % OR >= +20 % with "
        "multiple new lesions); no pre-baseline scan needed",
    ),
    HpdDefinition(
        "kas2020",
        "Kas B et al. JAMA Oncol 2020;6:1039-1046, doi:10.1001/jamaoncol.2020.1634",
        KINETIC,
        lambda f, c, k: _delta_tgr(f, c, k, True),
        DEFINITION_THRESHOLDS["kas2020"],
        "RECIST PD at first evaluation AND ΔTGR > 100 %/month",
    ),
    HpdDefinition(
        "gandara2021",
        "Gandara DR et al. J Immunother Cancer 2021;9:e001882, doi:10.1136/jitc-2020-001882",
        ("ici_start_date", "baseline_targets"),
        _gandara,
        DEFINITION_THRESHOLDS["gandara2021"],
        "fast progression: SLD >= +50 % on a scan <= 6 weeks after start, OR death from progression "
        "<= 12 weeks without a post-baseline scan",
        ("death_date", "death_from_progression"),
    ),
    HpdDefinition(
        "champiat2017_vol",
        "volumetric twin of Champiat 2017 (measured volumes; thresholds not validated)",
        VOLUMETRIC,
        _vol_champiat,
        DEFINITION_THRESHOLDS["champiat2017_vol"],
        "volumetric PD (volume x1.728) at first evaluation AND TGR_V,exp >= 2 x TGR_V,ref",
    ),
    HpdDefinition(
        "ferrara2018_vol",
        "volumetric twin of Ferrara 2018 (measured volumes; thresholds not validated)",
        VOLUMETRIC,
        lambda f, c, k: _delta_tgr(f, c, k, True, vol=True),
        DEFINITION_THRESHOLDS["ferrara2018_vol"],
        "volumetric PD at first evaluation AND ΔTGR_V > 50 %/month",
    ),
    HpdDefinition(
        "saada_bouzid2017_vol",
        "volumetric twin of Saada-Bouzid 2017 (measured volumes; not validated)",
        VOLUMETRIC,
        _vol_saada,
        DEFINITION_THRESHOLDS["saada_bouzid2017_vol"],
        "volumetric TGK_exp / TGK_ref >= 2 (mm3/month slopes)",
    ),
    HpdDefinition(
        "lahmar2016",
        "Lahmar J et al. 2016 [M: abstract as tabulated in HPD reviews, issue #11; citation not verified]",
        KINETIC,
        lambda f, c, k: _delta_tgr(f, c, k, False),
        DEFINITION_THRESHOLDS["lahmar2016"],
        "ΔTGR > 50 %/month, no RECIST progression prerequisite",
    ),
    HpdDefinition(
        "sasaki2019",
        "Sasaki A et al. 2019 [M: rule as tabulated in HPD reviews, issue #11; citation not verified]",
        KINETIC,
        _sasaki,
        DEFINITION_THRESHOLDS["sasaki2019"],
        "TGK ratio >= 2 AND tumour burden > +50 % at first evaluation",
    ),
    HpdDefinition(
        "ji2019",
        "Ji 2019 [M: TGK-ratio family as tabulated in Park HJ et al. JAMA Netw Open 2021; "
        "citation not verified]",
        KINETIC,
        _saada_like,
        DEFINITION_THRESHOLDS["ji2019"],
        "TGK ratio >= 2",
    ),
    HpdDefinition(
        "refae2020",
        "Refae S et al. 2020 [M: TGK-ratio family as tabulated in Park HJ et al. JAMA Netw Open 2021; "
        "not verified]",
        KINETIC,
        _saada_like,
        DEFINITION_THRESHOLDS["refae2020"],
        "TGK ratio >= 2",
    ),
    HpdDefinition(
        "tunali2019",
        "Tunali I et al. Lung Cancer 2019 [M: rule as tabulated in HPD reviews, issue #11; "
        "citation not verified]",
        KINETIC,
        _tunali,
        DEFINITION_THRESHOLDS["tunali2019"],
        "RECIST PD at first evaluation AND TGR ratio >= 2 AND TTF < 2 months",
        ("treatment_stop_date",),
    ),
    HpdDefinition(
        "kim_y2019_volumetric",
        "Kim Y et al. J Thorac Oncol 2019 (volumetry), as tabulated in Brambilla "
        "et al. Explor Target Antitumor Ther 2020 Table 1",
        VOLUMETRIC,
        _kim_y,
        DEFINITION_THRESHOLDS["kim_y2019_volumetric"],
        "TTF < 2 months AND TGK ratio >= 2 (volumetric by default) AND tumour volume >= +50 %",
        ("treatment_stop_date",),
    ),
]

DEFINITIONS: dict[str, HpdDefinition] = {d.key: d for d in _ENTRIES}
if set(DEFINITIONS) != set(DEFINITION_THRESHOLDS):  # the registry and the settings must list the same keys
    raise RuntimeError(
        "HPD registry and settings.hpd.DEFINITION_THRESHOLDS differ: "
        f"{sorted(set(DEFINITIONS) ^ set(DEFINITION_THRESHOLDS))}"
    )


# --------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------


def missing_inputs(f: PatientFacts, required: Sequence[str]) -> list[str]:
    """Why a definition is not evaluable for want of an input (empty: every input it needs is there)."""
    missing = []
    for name in required:
        if name == "ici_start_date":
            if f.ici_start is None:
                missing.append("no ICI start date")
        elif name == "pre_baseline_scan":
            if f.pre_baseline_date is None:
                missing.append("no pre-baseline scan")
        elif name == "baseline_targets":
            if f.baseline_date is None:
                missing.append("no baseline scan")
            elif f.n_targets <= 0:
                missing.append("no target lesion at baseline")
        elif name == "first_eval_scan":
            if f.first_eval_date is None:
                missing.append("no on-treatment evaluation scan")
        elif name == "volumes" and f.volume_baseline_mm3 is None:
            missing.append("no measured volumes")
    return missing


def _decide(
    definition: HpdDefinition, f: PatientFacts, cfg: ResponseConfig
) -> tuple[HpdLabel, Callable[[], str]]:
    """The label of one definition and a function that writes its reason. One decision code for the
    reported label (:func:`evaluate`) and for the stability draws (:func:`evaluate_label`), which never
    read the reason (formatting it was half of the Monte Carlo's time)."""
    missing = missing_inputs(f, definition.required_inputs)
    if missing:
        if (
            "no on-treatment evaluation scan" in missing
            and f.death_days is not None
            and cfg.early_death_policy == "hpd"
            and f.death_from_progression is not False
            and len(missing) == 1
            and compare(float(f.death_days), "<=", cfg.early_death_window_days)
        ):
            return (
                HpdLabel.HPD,
                lambda: (
                    f"died on day {f.death_days} <= {cfg.early_death_window_days:g} d, before the first "
                    "evaluation scan (early_death_policy = hpd)."
                ),
            )
        extra = (  # issue 16: states the recorded day; claims no order (a 2036 death is no early death)
            f" (death recorded on day {f.death_days} after ICI start)"
            if f.death_days is not None and "no on-treatment evaluation scan" in missing
            else ""
        )
        return HpdLabel.NOT_EVALUABLE, lambda: "; ".join(missing) + extra + "."
    criteria = definition.rule(f, cfg, definition.key)
    failing = [c for c in criteria if c.value is False]
    if failing:
        return HpdLabel.NO_HPD, lambda: "; ".join(c.text for c in failing) + "."
    if all(c.value is True for c in criteria):
        return HpdLabel.HPD, lambda: "; ".join(c.text for c in criteria) + "."
    return HpdLabel.NOT_EVALUABLE, lambda: "; ".join(c.text for c in criteria if c.value is None) + "."


def evaluate(definition: HpdDefinition, f: PatientFacts, cfg: ResponseConfig) -> HpdAssessment:
    label, reason = _decide(definition, f, cfg)
    return HpdAssessment(definition.key, label, reason())


def evaluate_label(definition: HpdDefinition, f: PatientFacts, cfg: ResponseConfig) -> HpdLabel:
    """The label :func:`evaluate` gives, without writing its reason (the stability draws)."""
    return _decide(definition, f, cfg)[0]


def evaluate_all(f: PatientFacts, cfg: ResponseConfig) -> list[HpdAssessment]:
    return [evaluate(d, f, cfg) for d in DEFINITIONS.values()]
