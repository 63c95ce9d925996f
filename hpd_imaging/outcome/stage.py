"""The survival stage as one function: kinetics table + clinical table (+ measurements) -> SurvivalResult.

Overall survival always; progression-free survival as well when clinical.csv has a ``progression_date``
column with at least one date. Used by ``hpd-imaging survival`` and by ``run`` (pipeline/study.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from hpd_imaging.errors import ClinicalDataError
from hpd_imaging.outcome.followup import followups, last_scan_dates, to_date
from hpd_imaging.outcome.survival import DefinitionSurvival, Endpoint, ranking, survival_by_definition

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
