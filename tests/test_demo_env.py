"""`make demo` tells another shell how to reach it: data/demo/env, sourced by a real shell,
points the CLI at the demo's store, instance and simulator; the banner says so."""

import subprocess

from pocketquant_pipelines.demo import banner, write_env_file


def test_the_env_file_sourced_in_a_shell_gives_the_demos_settings(tmp_path):
    home = tmp_path / "dagster home"  # a space survives quoting
    env = {"POCKETQUANT_DATA_DIR": str(tmp_path), "DAGSTER_HOME": str(home),
           "TRADINGVIEW_WS_URL": "ws://127.0.0.1:40123/socket.io/websocket", "PATH": "/usr/bin:/bin"}
    path = write_env_file(tmp_path, env)
    shown = subprocess.run(["bash", "-c", f"source '{path}' && echo \"$POCKETQUANT_DATA_DIR|$DAGSTER_HOME|$TRADINGVIEW_WS_URL\""],
                           env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == f"{tmp_path}|{home}|ws://127.0.0.1:40123/socket.io/websocket"


def test_the_banner_names_the_env_file_and_no_page_dagster_lacks(tmp_path):
    text = banner("http://127.0.0.1:3000", "ws://127.0.0.1:1/socket.io/websocket", tmp_path,
                  tmp_path / "home", tmp_path / "env", [])
    assert f"source {tmp_path / 'env'}" in text
    assert "Backfills" not in text and "Runs" in text
