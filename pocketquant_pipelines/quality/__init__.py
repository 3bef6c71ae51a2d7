"""Plain judgements over stored data (no Dagster, no streaming): the defs/ checks and sensors
and the CLI call them."""
