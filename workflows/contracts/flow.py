"""Authored decision trees: their shape, their bounds, and how a walk moves through one.

The walk workflow never holds a tree: the persistence activity reads it from the flow's row and
computes the next node with `FlowTree.next_node`.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, Field

from workflows.contracts.walk import NODE_ID_MAX, WalkNode

MAX_FLOW_NODES = 500
MAX_FLOW_BYTES = 512 * 1024  # the tree as compact JSON


class FlowOption(BaseModel):
    """An answer: leads to another node (`next`) or ends the walk with a `resolution`."""

    label: str = Field(min_length=1, max_length=200)
    next: str | None = Field(default=None, max_length=NODE_ID_MAX)
    resolution: str | None = Field(default=None, max_length=4000)


class FlowNode(BaseModel):
    """A question and its answers."""

    question: str = Field(min_length=1, max_length=1000)
    options: list[FlowOption] = Field(min_length=1, max_length=20)


class FlowTree(BaseModel):
    """`{root, nodes:{id: node}}`."""

    root: str = Field(min_length=1, max_length=NODE_ID_MAX)
    nodes: dict[str, FlowNode] = Field(max_length=MAX_FLOW_NODES)

    def problems(self) -> list[str]:
        """What makes this tree unwalkable: long ids, dangling links, ambiguous options, cycles (empty when fine)."""
        found = [f"node id '{n[:40]}...' is longer than {NODE_ID_MAX} characters"
                 for n in self.nodes if len(n) > NODE_ID_MAX]
        if self.root not in self.nodes:
            found.append(f"root '{self.root}' is not one of the nodes")
        for node_id, node in self.nodes.items():
            labels = [o.label.strip().casefold() for o in node.options]
            if len(set(labels)) != len(labels):
                found.append(f"node '{node_id}' has two options with the same label")
            for option in node.options:
                if (option.next is None) == (option.resolution is None):
                    found.append(f"node '{node_id}' option '{option.label}' needs exactly one of next/resolution")
                elif option.next is not None and option.next not in self.nodes:
                    found.append(f"node '{node_id}' option '{option.label}' leads to unknown node '{option.next}'")
        if not found and self._has_cycle():
            found.append("the tree has a cycle: a walk could loop forever")
        return found

    def _has_cycle(self) -> bool:
        # Iterative depth-first search: a long chain of nodes must not exhaust the Python stack.
        state: dict[str, int] = {}  # 1 = on the current path, 2 = done
        for start in self.nodes:
            if start in state:
                continue
            state[start] = 1
            stack = [(start, iter(self._children(start)))]
            while stack:
                node_id, children = stack[-1]
                child = next(children, None)
                if child is None:
                    state[node_id] = 2
                    stack.pop()
                elif state.get(child) == 1:
                    return True
                elif child not in state:
                    state[child] = 1
                    stack.append((child, iter(self._children(child))))
        return False

    def _children(self, node_id: str) -> list[str]:
        return [o.next for o in self.nodes[node_id].options if o.next is not None]

    def question(self, node_id: str) -> WalkNode | None:
        """The node `node_id` as served to the tech, or None when the tree has no such node."""
        node = self.nodes.get(node_id)
        if node is None:
            return None
        return WalkNode(id=node_id, kind="question", question=node.question, options=[o.label for o in node.options])

    def next_node(self, node_id: str, answer: str, new_id: Callable[[], str]) -> WalkNode | None:
        """Where `answer` to `node_id` leads: the next question or a resolution (None: no such option)."""
        node = self.nodes.get(node_id)
        wanted = answer.strip().casefold()
        option = next((o for o in node.options if o.label.strip().casefold() == wanted), None) if node else None
        if option is None:
            return None
        if option.next is not None:
            following = self.question(option.next)
            if following is not None:
                return following
        text = option.resolution or "This flow ends here without a fix: escalate it to an engineer."
        return WalkNode(id=new_id(), kind="resolution", resolution=text, escalate=option.resolution is None)
