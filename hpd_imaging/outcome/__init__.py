"""Outcome stage: survival by HPD definition (lifelines), best overall response, per-lesion kinetics.

Reads the kinetics/response/measurement tables and clinical.csv and returns an :class:`OutcomeResult`
(:func:`run_outcome`); writes nothing itself (report/outcome.py writes). See
:mod:`hpd_imaging.outcome.survival` for the landmark rule.
"""

from hpd_imaging.outcome.followup import FollowUp, followups, last_scan_dates
from hpd_imaging.outcome.stage import OutcomeResult, SurvivalResult, outcome_tables, run_outcome, run_survival
from hpd_imaging.outcome.survival import (
    RANKING_CAVEAT,
    SURVIVAL_COLUMNS,
    DefinitionSurvival,
    definition_keys,
    landmark_table,
    ranking,
    survival_by_definition,
    survival_frame,
)

__all__ = [
    "RANKING_CAVEAT",
    "SURVIVAL_COLUMNS",
    "DefinitionSurvival",
    "FollowUp",
    "OutcomeResult",
    "SurvivalResult",
    "definition_keys",
    "followups",
    "landmark_table",
    "last_scan_dates",
    "outcome_tables",
    "ranking",
    "run_outcome",
    "run_survival",
    "survival_by_definition",
    "survival_frame",
]
