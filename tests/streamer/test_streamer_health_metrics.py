"""/health and /metrics over real HTTP (a real socket, a real HTTP client)."""

import asyncio
import json
import urllib.error
import urllib.request

from streamer.health import HealthServer
from streamer.metrics import StreamerMetrics


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers.get("Content-Type"), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type"), exc.read().decode()


def test_health_and_metrics_endpoints_answer_over_http():
    metrics = StreamerMetrics()
    metrics.bars_completed.inc(3)
    metrics.store_write_seconds.observe(0.003)
    state = {"healthy": True}

    async def main():
        server = HealthServer(lambda: (state["healthy"], {"status": "ok" if state["healthy"] else "bad"}),
                              metrics.registry.render, port=0)
        port = await server.start()
        base = f"http://127.0.0.1:{port}"
        try:
            ok = await asyncio.to_thread(_get, base + "/health")
            state["healthy"] = False
            bad = await asyncio.to_thread(_get, base + "/health")
            prom = await asyncio.to_thread(_get, base + "/metrics")
            missing = await asyncio.to_thread(_get, base + "/nope")
        finally:
            await server.close()
        return ok, bad, prom, missing

    ok, bad, prom, missing = asyncio.run(main())
    assert ok[0] == 200 and json.loads(ok[2]) == {"status": "ok"}
    assert bad[0] == 503 and json.loads(bad[2]) == {"status": "bad"}
    assert prom[0] == 200 and prom[1].startswith("text/plain; version=0.0.4")
    assert "# TYPE pocketquant_streamer_bars_completed_total counter" in prom[2]
    assert "pocketquant_streamer_bars_completed_total 3" in prom[2]
    assert 'pocketquant_streamer_store_write_seconds_bucket{le="0.005"} 1' in prom[2]
    assert 'pocketquant_streamer_store_write_seconds_bucket{le="+Inf"} 1' in prom[2]
    assert "pocketquant_streamer_store_write_seconds_count 1" in prom[2]
    assert missing[0] == 404


def test_histogram_buckets_are_cumulative():
    metrics = StreamerMetrics()
    for v in (0.0005, 0.02, 0.02, 3.0, 100.0):
        metrics.tick_to_cache_seconds.observe(v)
    lines = dict(line.rsplit(" ", 1) for line in metrics.registry.render().splitlines()
                 if line.startswith("pocketquant_streamer_tick_to_cache_seconds"))
    p = "pocketquant_streamer_tick_to_cache_seconds"
    assert lines[f'{p}_bucket{{le="0.001"}}'] == "1"
    assert lines[f'{p}_bucket{{le="0.025"}}'] == "3"
    assert lines[f'{p}_bucket{{le="5"}}'] == "4"
    assert lines[f'{p}_bucket{{le="+Inf"}}'] == "5"
    assert lines[f"{p}_count"] == "5"
