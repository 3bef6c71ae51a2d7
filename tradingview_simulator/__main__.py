"""``python -m tradingview_simulator``: the ``simulate`` command on its own."""

import sys

from pocketquant_pipelines.cli import main
from tradingview_simulator.cli import simulate

sys.exit(main(sys.argv[1:], command=simulate, prog_name="python -m tradingview_simulator"))
