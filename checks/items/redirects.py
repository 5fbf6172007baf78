"""Which nginx server/location sent a redirect to the WebSocket upgrade (wt-tls).

The probe saw a 3xx; the route model (checks/parsers/nginx_route.py) replays nginx's choice for the same
request and, when it ends in a `return`/`rewrite ... redirect|permanent`, names the block with file and line.
When the model cannot tell (no dump, an uncertain `if`, a redirect nginx makes itself, such as the automatic
`/ws` -> `/ws/` one), the finding stays without a place rather than a guessed one.
"""

from __future__ import annotations

from typing import Any

from checks.facts import FactError, Facts, connect_address
from checks.parsers.nginx_route import Request, Return, route


async def redirect_origin(f: Facts) -> dict[str, Any] | None:
    """{"server": "file:line", "location": "file:line" | None, "status", "location_header"} or None."""
    try:
        config = await f.nginx_config()
    except FactError:
        return None
    scheme, host, port = f.target.public_endpoint()
    found = route(config, Request(host=host, port=port, path=f.target.ws_path, scheme=scheme,
                                  address=connect_address(host)))
    if not isinstance(found.outcome, Return) or not found.outcome.redirect or found.server is None:
        return None
    out: dict[str, Any] = {"server": f"{found.server.file}:{found.server.line}",
                           "server_names": list(found.server.names), "status": found.outcome.status,
                           "location_header": found.outcome.location_header, "steps": list(found.steps)}
    if found.location is not None:
        loc = found.location
        out["location"] = f"{loc.file}:{loc.line}"
        out["location_block"] = f"location {loc.modifier} {loc.uri}".replace("  ", " ")
    return out
