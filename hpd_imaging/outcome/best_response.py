"""Best overall response per patient: RECIST 1.1 (Eisenhauer et al. 2009, section 4.4 and Table 3) and
iRECIST (Seymour et al. 2017), from per-timepoint responses with their dates.

Works on simple typed inputs (:class:`TimepointResponse`), not on the response stage's internals, so it reads
response.csv as well as any user's own per-timepoint table.

Rules (RECIST 1.1 section 4.4.1; iRECIST applies the same with the i-prefixed categories):

* Only on-treatment assessments count (after ``ici_start``); NE timepoints are skipped.
* RECIST 1.1: assessments after the first PD are ignored (PD ends the RECIST record). iRECIST: the record
  goes on after an unconfirmed iUPD (a later iSD/iPR/iCR resets it) and ends at iCPD.
* Non-CR/Non-PD (``NON_CR_NON_PD``; iRECIST ``iNON_CR_NON_PD``: non-target disease only) ranks with SD, needs
  the same minimum duration, and is reported under its own label.
* Stable disease counts as the best response only when it was observed at least ``sd_min_days`` after the
  start of treatment (RECIST: "a minimum interval, defined in the protocol, typically 6-8 weeks"); otherwise
  the best response is PD when progression follows, else NE.
* With ``confirmation_required`` (non-randomised trials, where response is the primary end point): a CR or
  PR counts only when a later assessment at least ``confirmation_days`` (4 weeks) after it shows CR (for CR)
  or CR/PR (for PR). An unconfirmed CR/PR counts as SD when the SD duration rule is met. A CR followed by a
  PR is read as a confirmed PR (Table 3 leaves it to whether the first CR was "truly met", which a table of
  timepoint responses cannot tell).
* Only progression observed: the worst category (iUPD later confirmed as iCPD gives iCPD; an iUPD never
  confirmed stays iUPD), dated at its first occurrence.
* Without confirmation (randomised trials, the RECIST default): the best response recorded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Criteria = Literal["recist", "irecist"]

#: categories from best to worst; index = rank
_ORDER: dict[Criteria, tuple[str, ...]] = {
    "recist": ("CR", "PR", "SD", "PD"),
    "irecist": ("iCR", "iPR", "iSD", "iUPD", "iCPD"),
}
#: "Non-CR/Non-PD" (non-target disease only, RECIST 1.1 Table 2; iRECIST's iNon-CR/Non-PD) ranks with SD for
#: the best response and needs the same minimum duration (RECIST 1.1 section 4.4.1 and its Table 3 footnote:
#: "non-CR/non-PD is preferred over stable disease for non-target disease"); it keeps its own label
_SD_LIKE: dict[Criteria, str] = {"recist": "NON_CR_NON_PD", "irecist": "iNON_CR_NON_PD"}


def _rank(order: tuple[str, ...], sd_like: str, response: str) -> int:
    return order.index(order[2] if response == sd_like else response)


@dataclass(frozen=True)
class TimepointResponse:
    """One assessment: its date and the overall response category (``CR``/``PR``/``SD``/``NON_CR_NON_PD``/
    ``PD``/``NE`` or the iRECIST ``iCR``/``iPR``/``iSD``/``iNON_CR_NON_PD``/``iUPD``/``iCPD``/``NE``); None or
    empty is read as NE."""

    date: dt.date
    response: str | None


@dataclass(frozen=True)
class BestResponse:
    best_response: str  # a category, or "NE"
    date: dt.date | None  # the assessment that set it
    confirmed: bool | None  # CR/PR: whether confirmed; None where confirmation does not apply
    reason: str


@dataclass(frozen=True)
class BorSettings:
    """RECIST 1.1 leaves these to the protocol; the output says which values were used."""

    confirmation_required: bool = False
    confirmation_days: int = 28
    sd_min_days: int = 42


def best_overall_response(
    timepoints: Sequence[TimepointResponse],
    ici_start: dt.date,
    criteria: Criteria = "recist",
    settings: BorSettings | None = None,
) -> BestResponse:
    """The best overall response of one patient under ``criteria`` (rules in the module docstring)."""
    cfg = settings or BorSettings()
    order = _ORDER[criteria]
    cr, pr, sd = order[0], order[1], order[2]
    sd_like = _SD_LIKE[criteria]
    progression = order[3:]  # PD; iUPD, iCPD
    final = order[-1]  # PD ends RECIST; iCPD ends iRECIST
    seq = sorted(
        (t for t in timepoints if t.date > ici_start and (t.response or "NE") in (*order, sd_like)),
        key=lambda t: t.date,
    )
    cut = next((i for i, t in enumerate(seq) if t.response == final), None)
    if cut is not None:
        seq = seq[: cut + 1]
    if not seq:
        return BestResponse("NE", None, None, "no evaluable on-treatment assessment")

    def sd_ok(t: TimepointResponse) -> bool:
        return (t.date - ici_start).days >= cfg.sd_min_days

    def confirmed(i: int, wanted: set[str]) -> bool:
        t = seq[i]
        return any(
            u.response in wanted and (u.date - t.date).days >= cfg.confirmation_days for u in seq[i + 1 :]
        )

    best: tuple[int, int, bool | None, str] | None = None  # (rank, index, confirmed, reason)
    for i, t in enumerate(seq):
        assert t.response is not None
        rank = _rank(order, sd_like, t.response)
        conf: bool | None = None
        reason = f"{t.response} on {t.date.isoformat()}"
        if t.response in (cr, pr):
            conf = confirmed(i, {cr} if t.response == cr else {cr, pr})
            if cfg.confirmation_required and t.response == cr and not conf and confirmed(i, {pr}):
                rank, conf = order.index(pr), True  # CR then PR: a confirmed PR (module docstring)
                reason = f"{cr} on {t.date.isoformat()} followed by {pr}: confirmed {pr}"
            if cfg.confirmation_required and not conf:
                if not sd_ok(t):
                    continue
                rank = order.index(sd)
                reason = (
                    f"{t.response} on {t.date.isoformat()} not confirmed >= {cfg.confirmation_days} days "
                    f"later: {sd}"
                )
        elif t.response in (sd, sd_like) and not sd_ok(t):
            continue
        if best is None or rank < best[0]:  # ties (SD vs Non-CR/Non-PD): the earlier assessment
            best = (rank, i, conf, reason)
    if best is None or best[0] >= order.index(progression[0]):
        # no CR/PR/SD that qualifies: the worst category that occurred, or NE if none is progression
        prog = [t for t in seq if t.response in progression]
        if prog:
            label = max((t.response or final for t in prog), key=order.index)
            first = min((t for t in prog if t.response == label), key=lambda t: t.date)
            return BestResponse(label, first.date, None, f"{label} on {first.date.isoformat()}")
        return BestResponse(
            "NE",
            None,
            None,
            f"stable disease (or Non-CR/Non-PD) only before day {cfg.sd_min_days} and no progression",
        )
    rank, i, conf, reason = best
    label = sd_like if rank == order.index(sd) and seq[i].response == sd_like else order[rank]
    return BestResponse(label, seq[i].date, conf if label in (cr, pr) else None, reason)
