"""The outcome stage: kinetics/response/measurement tables + clinical table -> :class:`OutcomeResult`.

* :func:`run_survival`: kinetics table + clinical table (+ measurements) -> :class:`SurvivalResult`. Overall
  survival always; progression-free survival as well when clinical.csv has a ``progression_date`` column with
  at least one date.
* :func:`outcome_tables`: lesion_kinetics and best_response tables (no survival).
* :func:`run_outcome`: both, as ``run`` does (pipeline/study.py), survival only where clinical.csv has
  follow-up columns.

Computes only; report/outcome.py writes the result. Used by ``hpd-imaging survival`` and by ``run``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import pandas as pd

from hpd_imaging.errors import ClinicalDataError
from hpd_imaging.outcome.followup import followups, last_scan_dates, to_date
from hpd_imaging.outcome.survival import DefinitionSurvival, Endpoint, ranking, survival_by_definition
from hpd_imaging.settings.outcome import OutcomeSettings

if TYPE_CHECKING:
    from hpd_imaging.settings.hpd import ResponseConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EndpointResult:
    endpoint: Endpoint
    definitions: list[DefinitionSurvival]
    landmark: pd.DataFrame  # one row per patient: time from first evaluation, event or excluded_reason
    ranking: pd.DataFrame

    @property
    def n_excluded(self) -> dict[str, int]:
        """How many patients were left out of the landmark analysis, by reason."""
        reasons = self.landmark["excluded_reason"].dropna()
        return {str(k): int(v) for k, v in reasons.value_counts().sort_index().items()}


@dataclass(frozen=True)
class SurvivalResult:
    os: EndpointResult
    pfs: EndpointResult | None


def run_survival(
    kinetics: pd.DataFrame,
    clinical: pd.DataFrame,
    measurements: pd.DataFrame | None = None,
    *,
    clinical_source: str = "clinical.csv",
    on_error: Callable[[str, ClinicalDataError], None] | None = None,
) -> SurvivalResult:
    """Landmark survival by every definition column of ``kinetics``; raises ClinicalDataError on impossible
    dates (checked against each patient's last scan in ``measurements`` and ``kinetics``), or with
    ``on_error`` reports the patient there and leaves them out ("invalid follow-up dates")."""
    kinetics = kinetics.copy()
    kinetics["patient_id"] = kinetics["patient_id"].astype(str)
    invalid: set[str] = set()

    def report(pid: str, exc: ClinicalDataError) -> None:
        invalid.add(pid)
        if on_error is not None:
            on_error(pid, exc)

    fu = followups(
        clinical,
        last_scan_dates(measurements, kinetics),
        source=clinical_source,
        on_error=report if on_error is not None else None,
    )
    results: dict[Endpoint, EndpointResult] = {}
    endpoints: list[Endpoint] = ["os"]
    if "progression_date" in clinical.columns and any(
        to_date(v) is not None for v in clinical["progression_date"]
    ):
        endpoints.append("pfs")
    for endpoint in endpoints:
        defs, landmark = survival_by_definition(kinetics, fu, clinical, endpoint, invalid=invalid)
        results[endpoint] = EndpointResult(endpoint, defs, landmark, ranking(defs))
        excluded = results[endpoint].n_excluded
        if excluded:
            logger.info("%s landmark analysis: left out %s", endpoint.upper(), excluded)
    return SurvivalResult(results["os"], results.get("pfs"))


@dataclass(frozen=True)
class OutcomeResult:
    """What the outcome stage computed; None where its input was missing (the reason in ``*_skipped``)."""

    lesion_kinetics: pd.DataFrame | None  # lesion_kinetics.csv: needs a measurement table
    best_response: pd.DataFrame | None  # best_response.csv: needs response.csv
    survival: SurvivalResult | None = None
    survival_skipped: str | None = None


def outcome_tables(
    kinetics: pd.DataFrame,
    response: pd.DataFrame | None,
    clinical: pd.DataFrame | None,
    measurements: pd.DataFrame | None,
    settings: OutcomeSettings | None = None,
    response_config: ResponseConfig | None = None,
) -> OutcomeResult:
    """lesion_kinetics (from a measurement table, under ``response_config``'s kinetics conventions, else those
    kinetics.csv records) and best_response (from response.csv); no survival."""
    from hpd_imaging.outcome.tables import best_response_table, lesion_kinetics_table

    lesion_rows = None
    if measurements is not None and len(measurements):
        lesion_rows = lesion_kinetics_table(measurements, kinetics, response_config)
    best = None
    if response is not None:
        best = best_response_table(response, kinetics, clinical, lesion_rows, settings)
    return OutcomeResult(lesion_rows, best)


def run_outcome(
    kinetics: pd.DataFrame,
    response: pd.DataFrame | None,
    clinical: pd.DataFrame | None,
    lesions: pd.DataFrame | None,
    settings: OutcomeSettings | None = None,
    response_config: ResponseConfig | None = None,
    on_error: Callable[[str, ClinicalDataError], None] | None = None,
) -> OutcomeResult:
    """The outcome stage inside ``run``: :func:`outcome_tables` and, when clinical.csv has follow-up columns
    (death_date / last_followup_date), :func:`run_survival` (else skipped, with the reason). A patient with
    impossible follow-up dates is passed to ``on_error`` and left out (without ``on_error``:
    ClinicalDataError)."""
    result = outcome_tables(kinetics, response, clinical, lesions, settings, response_config)
    if clinical is None or not {"death_date", "last_followup_date"} & set(clinical.columns):
        why = "clinical.csv has no death_date/last_followup_date: survival analysis skipped"
        logger.warning(why)
        return replace(result, survival_skipped=why)
    return replace(result, survival=run_survival(kinetics, clinical, lesions, on_error=on_error))
