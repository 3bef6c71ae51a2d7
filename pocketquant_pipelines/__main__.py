import sys

from pocketquant_pipelines.cli import main

sys.exit(main())
