"""dbus-next's internals that listend.dbusio relies on are still there (dbus-next is pinned; this says why)."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path

from listend.dbusio import PRIVATE_NAMES, MessageBus
from tests.support.bus import PrivateBus


def test_the_private_names_listend_relies_on_exist(tmp_path: Path) -> None:
    bus = PrivateBus(tmp_path)

    async def connected() -> MessageBus:
        return await MessageBus(bus_address=bus.address).connect()

    try:
        connection = asyncio.run(connected())
        instances = {
            "dbus_next.aio.message_bus._MessageWriter": connection._writer,
            "dbus_next.aio.message_bus.MessageBus": connection,
        }
        for owner, names in PRIVATE_NAMES.items():
            if owner in instances:
                target: object = instances[owner]
            else:
                module_name, _, attr = owner.rpartition(".")
                try:
                    module = importlib.import_module(owner)
                    target = module
                except ModuleNotFoundError:
                    target = getattr(importlib.import_module(module_name), attr)
            missing = [name for name in names if not hasattr(target, name)]
            assert not missing, f"{owner} lacks {missing}: dbus-next changed; see listend/dbusio.py"
        connection.disconnect()
    finally:
        bus.close()
