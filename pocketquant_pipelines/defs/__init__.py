"""Dagster definitions, autoloaded by ``definitions.py`` (``dg.load_from_defs_folder``).

Every module here is imported and every Dagster object at module top level is collected, so a
new module (e.g. ``streaming.py``) needs no registration. Only this package and
``definitions.py`` import Dagster.
"""
