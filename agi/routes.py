"""The route table: AGI script name -> handler. One module per script; the name is the function's.

A duplicate name, or a handler that is not `async def` (panoramisk 1.4 would wrap it with
`asyncio.coroutine`, which Python 3.11 no longer has), fails at import time.
"""
from __future__ import annotations

import inspect
from types import MappingProxyType

from agi import route_call


def route_table(*handlers) -> MappingProxyType:
    table = {}
    for handler in handlers:
        name = handler.__name__
        if not inspect.iscoroutinefunction(handler):
            raise TypeError(f"AGI route {name!r}: the handler must be an async def function")
        if name in table:
            raise ValueError(f"AGI route {name!r} is registered twice")
        table[name] = handler
    return MappingProxyType(table)


ROUTES = route_table(
    route_call.route_call,
)
