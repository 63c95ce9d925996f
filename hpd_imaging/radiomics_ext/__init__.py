"""Helpers of the radiomics stage that do not need pyradiomics (regions, patient-level aggregation)."""
