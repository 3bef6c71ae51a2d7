"""The Dagster code location ``pocketquant``: everything under ``defs/`` is autoloaded.

Loaded by ``dagster dev -w workspace.yaml``, ``dg dev``, ``dg check defs`` / ``dg list defs``
and ``dagster-webserver``/``dagster-daemon``/``dagster code-server`` in production. A new
module dropped into ``defs/`` (e.g. the streamer's ``streaming.py``) is picked up without edits.
"""

from pathlib import Path

import dagster as dg

import pocketquant_pipelines.defs  # noqa: F401 - silences Dagster's preview/beta warnings first


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent / "defs")
