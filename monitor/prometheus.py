"""Prometheus metrics at `/metrics`, in the text exposition format (version 0.0.4), by hand.

Counters are since the server started (Prometheus computes rates and survives restarts by
itself); gauges are read at scrape time from the floor. Contact counts use the same
definitions as the monitor and the reports (`monitor/figures.py`). HTTP requests are counted
by a middleware, labelled by route pattern (never by raw path, so labels stay few).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from aiohttp import web

from commserver.agents import AgentState

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class HttpStats:
    """Requests and their durations per method, route and status."""

    requests: dict[tuple[str, str, int], int] = field(default_factory=dict)
    seconds: dict[tuple[str, str], tuple[float, int]] = field(default_factory=dict)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one finished request."""
        key = (method, route, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        total, count = self.seconds.get((method, route), (0.0, 0))
        self.seconds[(method, route)] = (total + seconds, count + 1)


HTTP_STATS = web.AppKey("http-stats", HttpStats)


def route_label(request: web.Request) -> str:
    """The route pattern a request matched (`/api/agents/{agent_id}/state`), or `unmatched`."""
    resource = request.match_info.route.resource
    if request.match_info.http_exception is not None or resource is None:
        return "unmatched"
    return resource.canonical


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every request with its final status (refusals and errors included)."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        request.app[HTTP_STATS].observe(
            request.method, route_label(request), status, time.perf_counter() - started
        )


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


class Exposition:
    """Builds the text format: HELP and TYPE once per metric, then its samples."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def metric(
        self, name: str, kind: str, help_text: str,
        samples: Iterable[tuple[dict[str, str], float]],
    ) -> None:
        """One metric family."""
        self._lines.append(f"# HELP {name} {help_text}")
        self._lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self._lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def summary(
        self, name: str, help_text: str, samples: Iterable[tuple[dict[str, str], float, int]]
    ) -> None:
        """A summary without quantiles: `_sum` and `_count` per label set."""
        self._lines.append(f"# HELP {name} {help_text}")
        self._lines.append(f"# TYPE {name} summary")
        for labels, total, count in samples:
            self._lines.append(f"{name}_sum{_labels(labels)} {_number(total)}")
            self._lines.append(f"{name}_count{_labels(labels)} {count}")

    def text(self) -> str:
        """The whole exposition."""
        return "\n".join(self._lines) + "\n"


def agent_state_samples(states: Iterable[AgentState]) -> list[tuple[dict[str, str], float]]:
    """Agents per state, every state listed (zero included) so series never vanish."""
    counts = dict.fromkeys(AgentState, 0)
    for state in states:
        counts[state] += 1
    return [({"state": s.value}, n) for s, n in counts.items()]
