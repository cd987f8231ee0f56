"""The status graph: states, named transitions and who may fire each, as data.

The core declares the default graph; plugins extend it through the
``extend_status_graph`` hook; ``validate()`` runs at start-up on the merged graph.
Everything that asks "may this order move?" asks the graph.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ordergraph.core.auth import Role


class StatusGraphError(ValueError):
    """The graph is inconsistent; the message lists every problem."""


@dataclass(frozen=True)
class Transition:
    name: str
    sources: tuple[str, ...]
    target: str
    roles: frozenset[Role]
    description: str = ""

    def allows(self, role: Role) -> bool:
        """Admins and the system may fire every transition; others need to be listed."""
        return role in (Role.ADMIN, Role.SYSTEM) or role in self.roles


@dataclass
class StatusGraph:
    initial: str
    states: dict[str, str] = field(default_factory=dict)
    transitions: dict[str, Transition] = field(default_factory=dict)

    def add_state(self, name: str, description: str = "") -> None:
        if name in self.states:
            raise StatusGraphError(f"state {name} is declared twice")
        self.states[name] = description

    def add_transition(
        self,
        name: str,
        sources: str | tuple[str, ...] | list[str],
        target: str,
        roles: set[Role] | frozenset[Role] | tuple[Role, ...] = (),
        description: str = "",
    ) -> None:
        if name in self.transitions:
            raise StatusGraphError(f"transition {name} is declared twice")
        sources = (sources,) if isinstance(sources, str) else tuple(sources)
        self.transitions[name] = Transition(
            name, sources, target, frozenset(Role(r) for r in roles), description
        )

    def extend_transition(
        self,
        name: str,
        *,
        sources: tuple[str, ...] = (),
        roles: set[Role] | frozenset[Role] | tuple[Role, ...] = (),
    ) -> None:
        """Let a plugin add sources or roles to an existing transition."""
        old = self.transitions.get(name)
        if old is None:
            raise StatusGraphError(f"there is no transition {name} to extend")
        self.transitions[name] = Transition(
            name,
            old.sources + tuple(s for s in sources if s not in old.sources),
            old.target,
            old.roles | frozenset(Role(r) for r in roles),
            old.description,
        )

    def validate(self) -> None:
        problems = []
        if self.initial not in self.states:
            problems.append(f"initial state {self.initial} is not declared")
        for t in self.transitions.values():
            if not t.sources:
                problems.append(f"transition {t.name} has no source state")
            for state in (*t.sources, t.target):
                if state not in self.states:
                    problems.append(f"transition {t.name} names unknown state {state}")
        unreachable = sorted(set(self.states) - self.reachable())
        if unreachable and self.initial in self.states:
            problems.append(f"states not reachable from {self.initial}: {', '.join(unreachable)}")
        if problems:
            raise StatusGraphError("invalid status graph: " + "; ".join(problems))

    def reachable(self) -> set[str]:
        seen, queue = {self.initial}, deque([self.initial])
        while queue:
            state = queue.popleft()
            for t in self.transitions.values():
                if state in t.sources and t.target not in seen:
                    seen.add(t.target)
                    queue.append(t.target)
        return seen

    def outgoing(self, status: str) -> list[Transition]:
        return [t for t in self.transitions.values() if status in t.sources]

    def available(self, status: str, role: Role) -> list[Transition]:
        return [t for t in self.outgoing(status) if t.allows(role)]

    def edges(self) -> list[tuple[str, str, str]]:
        """(source, target, transition name) for every edge, in declaration order."""
        return [(s, t.target, t.name) for t in self.transitions.values() for s in t.sources]

    def to_mermaid(self) -> str:
        lines = ["stateDiagram-v2", f"    [*] --> {self.initial}"]
        lines += [f"    {s} --> {t}: {name}" for s, t, name in self.edges()]
        return "\n".join(lines) + "\n"

    def to_dot(self) -> str:
        lines = ["digraph status_graph {", "    rankdir=LR;", "    node [shape=box];"]
        lines += [f'    {s} -> {t} [label="{name}"];' for s, t, name in self.edges()]
        return "\n".join([*lines, "}"]) + "\n"


_STAFF = {Role.STAFF}


def default_graph() -> StatusGraph:
    """The graph of DESIGN.md."""
    graph = StatusGraph(initial="RECEIVED")
    for name, description in [
        ("RECEIVED", "Stored after entry validation, waiting for review."),
        ("IN_REVIEW", "Review rules are running."),
        ("ON_HOLD", "Waiting for a person to approve or reject."),
        ("APPROVED", "Passed review; stock reserved; pending processing."),
        ("REJECTED", "Failed review; the customer may amend and resubmit."),
        ("PROCESSING", "Assigned and being picked and packed."),
        ("SHIPPED", "Handed to the carrier."),
        ("DELIVERED", "The carrier reports delivery."),
        ("COMPLETED", "Delivery confirmed; ready for settlement."),
        ("SETTLED", "Paid and closed."),
        ("CANCELLED", "Cancelled before shipping."),
    ]:
        graph.add_state(name, description)
    customer = {Role.CUSTOMER}
    graph.add_transition("start_review", "RECEIVED", "IN_REVIEW", _STAFF)
    graph.add_transition("approve", ("IN_REVIEW", "ON_HOLD"), "APPROVED", _STAFF)
    graph.add_transition("hold", "IN_REVIEW", "ON_HOLD", _STAFF)
    graph.add_transition("reject", ("IN_REVIEW", "ON_HOLD"), "REJECTED", _STAFF)
    graph.add_transition("resubmit", "REJECTED", "RECEIVED", _STAFF | customer)
    graph.add_transition("start_processing", "APPROVED", "PROCESSING", _STAFF)
    graph.add_transition("ship", "PROCESSING", "SHIPPED", _STAFF)
    graph.add_transition("deliver", "SHIPPED", "DELIVERED", _STAFF)
    graph.add_transition("complete", "DELIVERED", "COMPLETED", _STAFF | customer)
    graph.add_transition("settle", "COMPLETED", "SETTLED", _STAFF)
    graph.add_transition(
        "cancel",
        ("RECEIVED", "IN_REVIEW", "ON_HOLD", "APPROVED", "PROCESSING"),
        "CANCELLED",
        _STAFF | customer,
    )
    return graph
