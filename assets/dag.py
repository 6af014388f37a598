"""A small dependency-free DAG: upstream, downstream and a deterministic topological order."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Generic, TypeVar

from assets.errors import UserError

N = TypeVar("N", bound=Hashable)


class CycleError(UserError, ValueError):
    """The graph has a cycle; ``cycle`` lists it with the first node repeated at the end."""

    def __init__(self, cycle: list, detail: str = "") -> None:
        self.cycle = cycle
        super().__init__("dependency cycle: " + " -> ".join(str(n) for n in cycle) + (f" ({detail})" if detail else ""))


class DAG(Generic[N]):
    """Nodes and their upstream edges. ``edges[n]`` are the nodes ``n`` depends on."""

    def __init__(self, edges: Mapping[N, Iterable[N]]) -> None:
        self._up: dict[N, frozenset[N]] = {}
        for node, deps in edges.items():
            self._up[node] = frozenset(deps)
        for deps in list(self._up.values()):
            for dep in deps:
                self._up.setdefault(dep, frozenset())
        down: dict[N, set[N]] = {n: set() for n in self._up}
        for node, deps in self._up.items():
            for dep in deps:
                down[dep].add(node)
        self._down = {n: frozenset(d) for n, d in down.items()}

    @property
    def nodes(self) -> frozenset[N]:
        return frozenset(self._up)

    def parents(self, node: N) -> frozenset[N]:
        return self._up[node]

    def children(self, node: N) -> frozenset[N]:
        return self._down[node]

    def _walk(self, starts: Iterable[N], step: Mapping[N, frozenset[N]], depth: int | None) -> set[N]:
        seen: set[N] = set()
        frontier = set(starts)
        level = 0
        while frontier and (depth is None or level < depth):
            nxt: set[N] = set()
            for node in frontier:
                for other in step[node]:
                    if other not in seen:
                        seen.add(other)
                        nxt.add(other)
            frontier = nxt
            level += 1
        return seen

    def upstream(self, nodes: Iterable[N], depth: int | None = None) -> set[N]:
        """All ancestors of ``nodes`` (up to ``depth`` hops), excluding the nodes themselves unless reached."""
        return self._walk(nodes, self._up, depth)

    def downstream(self, nodes: Iterable[N], depth: int | None = None) -> set[N]:
        """All descendants of ``nodes`` (up to ``depth`` hops)."""
        return self._walk(nodes, self._down, depth)

    def toposorted(self) -> list[N]:
        """Nodes, each after its parents; ties sorted, so the order is deterministic.

        Raises:
            CycleError: with the path of one cycle.
        """
        return [n for level in self.levels() for n in level]

    def levels(self) -> list[list[N]]:
        """Nodes grouped by depth: each level depends only on earlier levels; sorted within a level."""
        remaining = {n: len(d) for n, d in self._up.items()}
        ready = sorted((n for n, c in remaining.items() if c == 0), key=_sort_key)
        levels: list[list[N]] = []
        done = 0
        while ready:
            levels.append(ready)
            done += len(ready)
            nxt = []
            for node in ready:
                for child in self._down[node]:
                    remaining[child] -= 1
                    if remaining[child] == 0:
                        nxt.append(child)
            ready = sorted(nxt, key=_sort_key)
        if done != len(self._up):
            raise CycleError(self._find_cycle({n for n, c in remaining.items() if c > 0}))
        return levels

    def _find_cycle(self, candidates: set[N]) -> list[N]:
        start = min(candidates, key=_sort_key)
        path: list[N] = [start]
        index = {start: 0}
        node = start
        while True:
            node = min((p for p in self._up[node] if p in candidates), key=_sort_key)
            if node in index:
                cycle = path[index[node] :] + [node]
                cycle.reverse()  # print in dependency direction: a -> b means b depends on a
                return cycle
            index[node] = len(path)
            path.append(node)


def _sort_key(node: object) -> str:
    return str(node)
