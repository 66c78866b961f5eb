"""The step graph of a script as SVG (`caruso script graph FILE`), laid out in layers.

A small Sugiyama-style layout, since Graphviz is not available: loops are broken by
reversing back edges, steps get a layer by their longest path from the start, and a few
barycentre sweeps order each layer to keep edges from crossing. Forward edges run down,
edges back up (loops) run around the right-hand side, error branches are dashed.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass
from xml.sax.saxutils import escape

from scripts_engine.script import CallService, DialogScript, StepKind

NODE_WIDTH = 200
NODE_HEIGHT = 46
H_GAP = 60
V_GAP = 70
MARGIN = 30
#: Longest text shown in a box or on an edge before it is cut with an ellipsis.
MAX_LABEL = 30
SWEEPS = 6

_FILL = {
    StepKind.QUESTION: "#e8f0fe",
    StepKind.INFORMATION: "#e6f4ea",
    StepKind.BRANCH: "#fef7e0",
    StepKind.END: "#fce8e6",
}
_STROKE = {
    StepKind.QUESTION: "#1a73e8",
    StepKind.INFORMATION: "#188038",
    StepKind.BRANCH: "#b06000",
    StepKind.END: "#c5221f",
}


@dataclass(frozen=True, slots=True)
class _Edge:
    source: str
    target: str
    label: str
    error: bool


def _cut(text: str, limit: int = MAX_LABEL) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _edges(script: DialogScript) -> list[_Edge]:
    edges: list[_Edge] = []
    for step in script.steps.values():
        for transition in step.transitions:
            label = transition.label or (transition.when.source if transition.when else "")
            edges.append(_Edge(step.id, transition.to, label, False))
            for action in transition.actions:
                target = action.on_error
                if target is None and isinstance(action, CallService):
                    target = script.on_error
                if target is not None:
                    edges.append(_Edge(step.id, target, f"{action.name} failed", True))
    return list(dict.fromkeys(edges))


def _back_edges(script: DialogScript, edges: list[_Edge]) -> set[tuple[str, str]]:
    """Edges closing a loop (found by a depth-first walk from the start)."""
    successors: dict[str, list[str]] = defaultdict(list)
    for edge in edges:
        successors[edge.source].append(edge.target)
    back: set[tuple[str, str]] = set()
    state: dict[str, int] = {}
    roots = [script.start, *script.steps]
    for root in roots:
        if root in state or root not in script.steps:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        state[root] = 1
        while stack:
            node, index = stack[-1]
            children = successors[node]
            if index < len(children):
                stack[-1] = (node, index + 1)
                child = children[index]
                if state.get(child) == 1:
                    back.add((node, child))
                elif child not in state:
                    state[child] = 1
                    stack.append((child, 0))
            else:
                state[node] = 2
                stack.pop()
    return back


def _layers(script: DialogScript, edges: list[_Edge], back: set[tuple[str, str]]) -> dict[str, int]:
    forward: dict[str, set[str]] = defaultdict(set)
    incoming: dict[str, int] = dict.fromkeys(script.steps, 0)
    for edge in edges:
        if (edge.source, edge.target) in back or edge.source == edge.target:
            continue
        if edge.target not in forward[edge.source]:
            forward[edge.source].add(edge.target)
            incoming[edge.target] += 1
    layer = dict.fromkeys(script.steps, 0)
    ready = [s for s in script.steps if incoming[s] == 0]
    while ready:
        node = ready.pop(0)
        for target in sorted(forward[node], key=list(script.steps).index):
            layer[target] = max(layer[target], layer[node] + 1)
            incoming[target] -= 1
            if incoming[target] == 0:
                ready.append(target)
    return layer


_DUMMY_WIDTH = 16


def _chains(
    edges: list[_Edge], layer: dict[str, int], back: set[tuple[str, str]]
) -> dict[int, list[str]]:
    """Waypoints (dummy nodes) for each forward edge that spans more than one layer."""
    chains: dict[int, list[str]] = {}
    for index, edge in enumerate(edges):
        if (edge.source, edge.target) in back or edge.source == edge.target:
            continue
        span = layer[edge.target] - layer[edge.source]
        if span > 1:
            chains[index] = [f"\0{index}:{k}" for k in range(1, span)]
    return chains


def _order(
    script: DialogScript,
    edges: list[_Edge],
    layer: dict[str, int],
    chains: dict[int, list[str]],
) -> list[list[str]]:
    depth = max(layer.values(), default=0) + 1
    rows: list[list[str]] = [[] for _ in range(depth)]
    for step in script.steps:  # file order is a good first guess: authors write top-down
        rows[layer[step]].append(step)
    neighbours: dict[str, set[str]] = defaultdict(set)
    for index, edge in enumerate(edges):
        if edge.source == edge.target:
            continue
        points = [edge.source, *chains.get(index, []), edge.target]
        base = layer[edge.source]
        for offset, dummy in enumerate(chains.get(index, []), start=1):
            rows[base + offset].append(dummy)
        for a, b in itertools.pairwise(points):
            neighbours[a].add(b)
            neighbours[b].add(a)
    for sweep in range(SWEEPS):
        indices = range(1, depth) if sweep % 2 == 0 else range(depth - 2, -1, -1)
        for i in indices:
            reference = i - 1 if sweep % 2 == 0 else i + 1
            position = {step: index for index, step in enumerate(rows[reference])}
            row = rows[i]
            current = {step: index for index, step in enumerate(row)}

            keys = {node: _barycentre(node, neighbours, position, current) for node in row}
            rows[i] = sorted(row, key=keys.__getitem__)
    return rows


def _barycentre(
    node: str, neighbours: dict[str, set[str]], position: dict[str, int], current: dict[str, int]
) -> tuple[float, int]:
    """Mean position of a node's neighbours in the reference layer (ties: current order)."""
    linked = [position[n] for n in neighbours[node] if n in position]
    centre = sum(linked) / len(linked) if linked else float(current[node])
    return (centre, current[node])


def _width(node: str) -> float:
    return _DUMMY_WIDTH if node.startswith("\0") else NODE_WIDTH


def render_svg(script: DialogScript) -> str:
    """The step graph of `script` as a standalone SVG document."""
    edges = _edges(script)
    back = _back_edges(script, edges)
    layer = _layers(script, edges, back)
    chains = _chains(edges, layer, back)
    rows = _order(script, edges, layer, chains)
    row_widths = [sum(_width(n) for n in row) + max(len(row) - 1, 0) * H_GAP for row in rows]
    widest = max(row_widths, default=NODE_WIDTH)
    width = MARGIN * 2 + widest + 160
    height = MARGIN * 2 + len(rows) * NODE_HEIGHT + (len(rows) - 1) * V_GAP + 40
    position: dict[str, tuple[float, float]] = {}
    for index, row in enumerate(rows):
        x = MARGIN + (widest - row_widths[index]) / 2
        y = MARGIN + 30 + index * (NODE_HEIGHT + V_GAP)
        for node in row:
            position[node] = (x, y)
            x += _width(node) + H_GAP
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif" font-size="12">',
        "<defs>",
        '<marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/>'
        "</marker>",
        '<marker id="arrow-error" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#c5221f"/></marker>',
        "</defs>",
        f"<title>{escape(script.title)} ({escape(script.id)} version "
        f"{escape(script.version)})</title>",
        f'<text x="{MARGIN}" y="{MARGIN}" font-size="16" font-weight="bold">'
        f"{escape(script.title)} \u2014 {escape(script.id)} v{escape(script.version)}</text>",
    ]
    loop_offset = 0.0
    for index, edge in enumerate(edges):
        is_back = (edge.source, edge.target) in back or edge.source == edge.target
        waypoints = [position[d] for d in chains.get(index, [])]
        out.append(_edge_svg(edge, position, waypoints, is_back, loop_offset))
        if is_back:
            loop_offset += 8
    for step in script.steps.values():
        box_x, box_y = position[step.id]
        second = step.title or ""
        if step.kind is StepKind.QUESTION and step.answer_type is not None:
            second = f"{second} [{step.answer_type.value}]".strip()
        elif step.kind is StepKind.END:
            second = f"end: {step.disposition}"
        elif step.kind is StepKind.BRANCH:
            second = second or "branch"
        marker = " \u25b6" if step.id == script.start else ""
        out.append(
            f'<g class="step" data-step="{escape(step.id)}" data-kind="{step.kind.value}">'
            f'<rect x="{box_x:.0f}" y="{box_y:.0f}" '
            f'width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="8" '
            f'fill="{_FILL[step.kind]}" stroke="{_STROKE[step.kind]}" stroke-width="1.5"/>'
            f'<text x="{box_x + NODE_WIDTH / 2:.0f}" y="{box_y + 19:.0f}" text-anchor="middle" '
            f'font-weight="bold">{escape(_cut(step.id))}{marker}</text>'
            f'<text x="{box_x + NODE_WIDTH / 2:.0f}" y="{box_y + 36:.0f}" text-anchor="middle" '
            f'fill="#444">{escape(_cut(second))}</text></g>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _edge_svg(
    edge: _Edge,
    position: dict[str, tuple[float, float]],
    waypoints: list[tuple[float, float]],
    is_back: bool,
    loop_offset: float,
) -> str:
    sx, sy = position[edge.source]
    tx, ty = position[edge.target]
    colour = "#c5221f" if edge.error else "#555"
    dash = ' stroke-dasharray="5,4"' if edge.error else ""
    marker = "url(#arrow-error)" if edge.error else "url(#arrow)"
    if is_back or ty <= sy:
        # Loops leave the source's right side and come back into the target's right side.
        x1, y1 = sx + NODE_WIDTH, sy + NODE_HEIGHT / 2
        x2, y2 = tx + NODE_WIDTH, ty + NODE_HEIGHT / 2
        bulge = max(x1, x2) + 50 + loop_offset
        path = f"M{x1:.0f},{y1:.0f} C{bulge:.0f},{y1:.0f} {bulge:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"
        lx, ly = bulge - 10, (y1 + y2) / 2
    else:
        # Down through the waypoints of the layers it crosses, one smooth segment per layer.
        points = [(sx + NODE_WIDTH / 2, sy + NODE_HEIGHT)]
        for wx, wy in waypoints:
            centre = wx + _DUMMY_WIDTH / 2
            points.extend([(centre, wy), (centre, wy + NODE_HEIGHT)])
        points.append((tx + NODE_WIDTH / 2, ty))
        segments = [f"M{points[0][0]:.0f},{points[0][1]:.0f}"]
        for i in range(0, len(points) - 1, 2):
            (ax, ay), (bx, by) = points[i], points[i + 1]
            middle = (ay + by) / 2
            segments.append(f"C{ax:.0f},{middle:.0f} {bx:.0f},{middle:.0f} {bx:.0f},{by:.0f}")
            if i + 2 < len(points):
                cx, cy = points[i + 2]
                segments.append(f"L{cx:.0f},{cy:.0f}")
        path = " ".join(segments)
        (ax, ay), (bx, by) = points[0], points[1]
        lx, ly = (ax + bx) / 2, (ay + by) / 2
    label = ""
    if edge.label:
        label = (
            f'<text x="{lx:.0f}" y="{ly:.0f}" font-size="10" text-anchor="middle" fill="{colour}" '
            f'stroke="white" stroke-width="3" paint-order="stroke">'
            f"{escape(_cut(edge.label, 36))}</text>"
        )
    return (
        f'<g class="transition" data-from="{escape(edge.source)}" data-to="{escape(edge.target)}">'
        f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="1.3"{dash} '
        f'marker-end="{marker}"/>{label}</g>'
    )
