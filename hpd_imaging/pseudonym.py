"""Pseudonymised outputs: patient IDs replaced by keyed hashes (HMAC-SHA256) in every table, the report
and the DICOM files.

Why a *keyed* hash: a plain hash of a patient ID can be reversed by hashing every plausible ID (hospital IDs
are short and structured); HMAC with a secret key cannot, yet the same key always gives the same pseudonym, so
results of separate runs (or sites sharing a key) still link up. The key never enters an output; run.json
records only a fingerprint of it (an HMAC of a fixed text), which lets a reader check that two runs used the
same key without revealing it.

Scope (documented limits): patient IDs are replaced in the ``patient_id`` columns and wherever they occur as a
whole token inside text cells (file paths, error messages); names and birth dates never enter a table. The
DICOM SEG/SR keep the source CT's patient and study modules by default; with ``--pseudonymize`` they carry the
pseudonym as PatientID and PatientName, and the identifying attributes the writers copy from the CT are
emptied (type 2: PatientBirthDate, AccessionNumber, StudyID, ReferringPhysicianName) or removed (type 3:
OtherPatientIDs and its sequence, OtherPatientNames, IssuerOfPatientID, InstitutionName, InstitutionAddress,
InstitutionalDepartmentName, StationName; and the site, station and serial number of the source scanner that
highdicom copies into ContributingEquipmentSequence). Study/Series/SOP Instance UIDs are kept: the SEG and
SR must reference the source CT (a site that must not share the CT's UIDs needs a de-identifying export
before hpd-imaging). Dates (StudyDate, the scan dates) are kept too: the longitudinal analysis is made of
them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Mapping

import pandas as pd

from hpd_imaging.errors import ConfigError

ENV_KEY = "HPD_PSEUDONYM_KEY"
MIN_KEY_CHARS = 16  # ~ NIST SP 800-107: an HMAC key should carry at least 112 bits of entropy
PREFIX = "PSN-"
HEX_CHARS = 16  # 64 bits: a collision among 100,000 patients has probability ~ 3e-10 (and is checked)
#: identifying attributes of the source CT that a pseudonymised SEG/SR does not carry (module docstring)
PSEUDONYMISED_BLANK = (
    "PatientBirthDate",
    "AccessionNumber",
    "StudyID",
    "ReferringPhysicianName",
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "IssuerOfPatientID",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "StationName",
)


def pseudonym(patient_id: str, key: bytes) -> str:
    """``PSN-`` + the first 16 hex digits of HMAC-SHA256(key, patient_id)."""
    return PREFIX + hmac.new(key, patient_id.encode("utf-8"), hashlib.sha256).hexdigest()[:HEX_CHARS]


def resolve_key(key: str | None) -> bytes:
    """The key given on the command line, else ``$HPD_PSEUDONYM_KEY``; refused when absent or short."""
    value = key if key is not None else os.environ.get(ENV_KEY)
    if not value:
        raise ConfigError(f"--pseudonymize: expected a secret key (--pseudonym-key or ${ENV_KEY}), got none")
    if len(value) < MIN_KEY_CHARS:
        raise ConfigError(
            f"--pseudonymize: expected a key of at least {MIN_KEY_CHARS} characters, got {len(value)}"
        )
    return value.encode("utf-8")


class PatientIds:
    """Maps source patient IDs to the IDs written in outputs: themselves, or keyed pseudonyms.

    One object per run, built from the archive's patient list (so collisions are checked once, up front).
    """

    def __init__(self, patient_ids: Iterable[str], key: bytes | None = None) -> None:
        self.key = key
        ids = sorted(set(patient_ids))
        self.mapping: dict[str, str] = {pid: pseudonym(pid, key) if key else pid for pid in ids}
        if key is not None and len(set(self.mapping.values())) != len(self.mapping):
            raise ConfigError("--pseudonymize: two patient IDs gave the same pseudonym; use another key")
        # whole-token replacement: an ID inside a path or a message, bounded by non-word characters
        self._pattern = (
            re.compile(
                r"(?<![A-Za-z0-9])("
                + "|".join(re.escape(p) for p in sorted(ids, key=len, reverse=True) if p)
                + r")(?![A-Za-z0-9])"
            )
            if key is not None and any(ids)
            else None
        )

    @property
    def enabled(self) -> bool:
        return self.key is not None

    def key_fingerprint(self) -> str | None:
        """HMAC of a fixed text: identifies the key in run.json without revealing it."""
        if self.key is None:
            return None
        return hmac.new(self.key, b"hpd-imaging key fingerprint", hashlib.sha256).hexdigest()[:16]

    def alias(self, patient_id: str) -> str:
        if patient_id in self.mapping:
            return self.mapping[patient_id]
        return pseudonym(patient_id, self.key) if self.key else patient_id

    def scrub(self, text: str) -> str:
        """Replace every whole-token occurrence of a source patient ID in ``text`` by its pseudonym."""
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(lambda m: self.mapping[m.group(1)], text)

    def table(self, df: pd.DataFrame, id_columns: Iterable[str] = ("patient_id",)) -> pd.DataFrame:
        """A copy of ``df`` with the ID columns mapped and every other text cell scrubbed."""
        if not self.enabled or df is None or df.empty:
            return df
        out = df.copy()
        id_columns = [c for c in id_columns if c in out.columns]
        for col in out.columns:
            if col in id_columns:
                out[col] = out[col].map(lambda v: self.alias(str(v)) if isinstance(v, str) and v else v)
            elif out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
                out[col] = out[col].map(lambda v: self.scrub(v) if isinstance(v, str) else v)
        return out

    def patient_attributes(self, patient_id: str) -> Mapping[str, str]:
        """Patient- and study-module attributes written into the DICOM SEG/SR of ``patient_id`` (its output
        ID); an empty value empties a type 2 attribute and removes a type 3 one
        (:data:`hpd_imaging.io.dicom_out._common.REMOVE_WHEN_EMPTY`).

        By default none: the SEG/SR keep the source CT's patient module, so that a viewer or PACS files them
        with their CT (issue 18: patient attributes that differ from the CT's may list them under another
        patient). Pseudonymised outputs carry the pseudonym as PatientID and PatientName and none of the
        identifiers of the module docstring.
        """
        if not self.enabled:
            return {}
        # family-name component only; the trailing caret marks a one-component person name (PS3.5 6.2.1.2)
        return {
            "PatientID": patient_id,
            "PatientName": f"{patient_id}^",
            **dict.fromkeys(PSEUDONYMISED_BLANK, ""),
        }


def replace_token(text: str, old: str, new: str) -> str:
    """``text`` with every whole-token occurrence of ``old`` replaced by ``new`` (used on workers, which get
    one patient's source ID and pseudonym but never the key)."""
    if not text or not old or old == new:
        return text
    return re.sub(rf"(?<![A-Za-z0-9]){re.escape(old)}(?![A-Za-z0-9])", new, text)
