"""Settings of archive discovery (owned by the archive stage)."""

from __future__ import annotations

from hpd_imaging.settings_base import Section


class ArchiveSettings(Section):
    use_cache: bool = True  # header-index cache (SQLite) in the output folder
