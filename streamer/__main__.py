import sys

from streamer.service import main

if __name__ == "__main__":
    sys.exit(main())
