"""Dagster definitions, autoloaded by ``definitions.py`` (``dg.load_from_defs_folder``).

Every module here is imported and every Dagster object at module top level is collected, so a
new module (e.g. ``streaming.py``) needs no registration. Only this package and
``definitions.py`` import Dagster.
"""

import warnings

import dagster as _dg

# Partitioned asset checks and backfill policies are preview/beta in Dagster 1.13; we rely on
# them on purpose (docs/dagster.md), so their warnings are noise in every process and test.
warnings.filterwarnings("ignore", category=_dg.PreviewWarning)
warnings.filterwarnings("ignore", category=_dg.BetaWarning)
