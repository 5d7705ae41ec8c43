"""The demo as several uvicorn workers run it in the scale test (an import string).

URLs come from the environment, as they would in production; each response names the
worker's pid so the test can see that both workers answered.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from examples.newsroom.app import CONFIG_PATH, create_app

from consentgate import Config, ConsentGate


def create() -> Any:
    config = Config.from_toml(CONFIG_PATH)
    wall = dataclasses.replace(
        config.wall, meter=dataclasses.replace(config.wall.meter, store="server", network_limit=3)
    )
    config = dataclasses.replace(
        config,
        database_url=os.environ["CONSENTGATE_SCALE_DATABASE_URL"],
        meter_url=os.environ["CONSENTGATE_SCALE_METER_URL"],
        wall=wall,
    )
    return _with_worker_header(ConsentGate(create_app(wrap=False), config=config))


def _with_worker_header(app: Any) -> Any:
    pid = str(os.getpid()).encode()

    async def tagged(scope: Any, receive: Any, send: Any) -> None:
        async def send_with_pid(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], (b"x-worker-pid", pid)]}
            await send(message)

        await app(scope, receive, send_with_pid)

    return tagged
