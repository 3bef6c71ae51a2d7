"""The Dagster code location ``pocketquant``: everything under ``defs/`` is autoloaded.

Loaded by ``dagster dev -w workspace.yaml``, ``dg dev``, ``dg check defs`` / ``dg list defs``
and ``dagster-webserver``/``dagster-daemon``/``dagster code-server`` in production. A new
module dropped into ``defs/`` (e.g. the streamer's ``streaming.py``) is picked up without edits.
"""

import warnings
from pathlib import Path

import dagster as dg

# Partitioned asset checks and backfill policies are preview/beta in Dagster 1.13; we rely on
# them on purpose (docs/dagster.md), so their warnings are noise in every process start.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent / "defs")
