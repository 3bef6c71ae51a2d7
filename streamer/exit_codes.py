"""Exit codes of the streamer process, so a supervisor can tell a retryable stop from one that
needs an operator (a restart loop on a rejected token or a full disk only fills logs)."""

OK = 0
CONFIG = 2        # bad setting, e.g. the health port is taken
AUTH = 3          # TradingView rejected the auth token / sign-in: fix TRADINGVIEW_* settings
DISK_FULL = 4     # no space for the bar store or the spill reservation at start
STREAM_FAILED = 5  # the quote stream ended with an error the client does not retry
