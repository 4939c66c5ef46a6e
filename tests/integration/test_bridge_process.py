"""The dev tools' bridge-as-a-process helper fails loudly, with the bridge's own words."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.devserver.bridge_process import BridgeExited, BridgeProcess
from bridge.devserver.ports import free_port


async def test_a_bridge_that_cannot_start_is_reported_with_its_log(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text('[backend]\ntype = "carrier-pigeon"\n')
    process = BridgeProcess(config, free_port(), tmp_path / "bridge.log")
    try:
        with pytest.raises(BridgeExited, match=r"backend\.type"):
            await process.start()
    finally:
        await process.stop()
    assert process.proc is not None and process.proc.returncode not in (None, 0)
