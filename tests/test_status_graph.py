"""The status graph as data: the default graph of DESIGN.md, validation, roles and diagrams."""

from __future__ import annotations

import re

import pytest

from ordergraph.core.auth import Role
from ordergraph.core.statusgraph import StatusGraph, StatusGraphError, default_graph

# Every edge of DESIGN.md's "Default status graph": (transition, source, target).
DESIGN_EDGES = {
    ("start_review", "RECEIVED", "IN_REVIEW"),
    ("approve", "IN_REVIEW", "APPROVED"),
    ("approve", "ON_HOLD", "APPROVED"),
    ("hold", "IN_REVIEW", "ON_HOLD"),
    ("reject", "IN_REVIEW", "REJECTED"),
    ("reject", "ON_HOLD", "REJECTED"),
    ("resubmit", "REJECTED", "RECEIVED"),
    ("start_processing", "APPROVED", "PROCESSING"),
    ("ship", "PROCESSING", "SHIPPED"),
    ("deliver", "SHIPPED", "DELIVERED"),
    ("complete", "DELIVERED", "COMPLETED"),
    ("settle", "COMPLETED", "SETTLED"),
    ("cancel", "RECEIVED", "CANCELLED"),
    ("cancel", "IN_REVIEW", "CANCELLED"),
    ("cancel", "ON_HOLD", "CANCELLED"),
    ("cancel", "APPROVED", "CANCELLED"),
    ("cancel", "PROCESSING", "CANCELLED"),
}
DESIGN_STATES = {target for _, _, target in DESIGN_EDGES} | {"RECEIVED"}


def small_graph() -> StatusGraph:
    graph = StatusGraph(initial="NEW")
    graph.add_state("NEW")
    graph.add_state("DONE")
    graph.add_transition("finish", "NEW", "DONE", {Role.STAFF})
    return graph


def test_the_default_graph_is_valid_and_every_state_is_reachable() -> None:
    graph = default_graph()
    graph.validate()
    assert graph.initial == "RECEIVED"
    assert set(graph.states) == DESIGN_STATES
    assert graph.reachable() == DESIGN_STATES


def test_the_default_graph_has_exactly_the_transitions_of_the_design() -> None:
    graph = default_graph()
    assert {(name, source, target) for source, target, name in graph.edges()} == DESIGN_EDGES
    assert all(graph.states[state] for state in graph.states), "every state is described"


def test_nothing_leaves_the_end_states_and_nothing_cancels_a_shipped_order() -> None:
    graph = default_graph()
    assert graph.outgoing("SETTLED") == []
    assert graph.outgoing("CANCELLED") == []
    for state in ("SHIPPED", "DELIVERED", "COMPLETED"):
        assert "cancel" not in [t.name for t in graph.outgoing(state)]


def test_validation_lists_every_problem_at_once() -> None:
    graph = small_graph()
    graph.add_state("LIMBO")  # nothing leads here
    graph.add_transition("vanish", "DONE", "NOWHERE")  # an unknown target
    graph.add_transition("teleport", ("ELSEWHERE",), "DONE")  # an unknown source
    with pytest.raises(StatusGraphError) as caught:
        graph.validate()
    message = str(caught.value)
    assert "transition vanish names unknown state NOWHERE" in message
    assert "transition teleport names unknown state ELSEWHERE" in message
    assert "states not reachable from NEW: LIMBO" in message


def test_an_undeclared_initial_state_and_a_sourceless_transition_fail_validation() -> None:
    graph = StatusGraph(initial="START")
    graph.add_state("DONE")
    graph.add_transition("finish", (), "DONE")
    with pytest.raises(StatusGraphError) as caught:
        graph.validate()
    assert "initial state START is not declared" in str(caught.value)
    assert "transition finish has no source state" in str(caught.value)


def test_a_state_reachable_only_through_another_unreachable_state_is_reported() -> None:
    graph = small_graph()
    graph.add_state("ISLAND")
    graph.add_state("BEYOND_ISLAND")
    graph.add_transition("leave_island", "ISLAND", "BEYOND_ISLAND")
    with pytest.raises(StatusGraphError, match="not reachable from NEW: BEYOND_ISLAND, ISLAND"):
        graph.validate()


def test_a_state_or_transition_declared_twice_is_refused() -> None:
    graph = small_graph()
    with pytest.raises(StatusGraphError, match="state DONE is declared twice"):
        graph.add_state("DONE")
    with pytest.raises(StatusGraphError, match="transition finish is declared twice"):
        graph.add_transition("finish", "DONE", "NEW")
    assert graph.edges() == [("NEW", "DONE", "finish")], "the refused declarations left no trace"


def test_extending_a_transition_adds_sources_and_roles_without_duplicates() -> None:
    graph = small_graph()
    graph.add_state("PAUSED")
    graph.add_transition("pause", "NEW", "PAUSED", {Role.STAFF})
    graph.extend_transition("finish", sources=("PAUSED", "NEW"), roles=(Role.CUSTOMER,))
    finish = graph.transitions["finish"]
    assert finish.sources == ("NEW", "PAUSED")
    assert finish.roles == {Role.STAFF, Role.CUSTOMER}
    assert finish.target == "DONE"
    graph.validate()


def test_extending_an_unknown_transition_is_a_graph_error() -> None:
    with pytest.raises(StatusGraphError, match="there is no transition ship_by_drone"):
        small_graph().extend_transition("ship_by_drone", sources=("NEW",))


@pytest.mark.parametrize(
    ("transition", "allowed"), [("cancel", True), ("resubmit", True), ("complete", True)]
    + [(name, False) for name in ("start_review", "approve", "hold", "reject")]
    + [(name, False) for name in ("start_processing", "ship", "deliver", "settle")],
)  # fmt: skip
def test_a_customer_may_cancel_resubmit_and_complete_only(transition: str, allowed: bool) -> None:
    assert default_graph().transitions[transition].allows(Role.CUSTOMER) is allowed


def test_admins_and_the_system_may_fire_everything_staff_everything_integrators_nothing() -> None:
    transitions = default_graph().transitions.values()
    assert all(t.allows(Role.ADMIN) and t.allows(Role.SYSTEM) for t in transitions)
    assert all(t.allows(Role.STAFF) for t in transitions)
    assert not any(t.allows(Role.INTEGRATOR) for t in transitions)


def test_available_transitions_depend_on_the_status_and_the_role() -> None:
    graph = default_graph()
    assert {t.name for t in graph.available("IN_REVIEW", Role.STAFF)} == {
        "approve",
        "hold",
        "reject",
        "cancel",
    }
    assert [t.name for t in graph.available("IN_REVIEW", Role.CUSTOMER)] == ["cancel"]
    assert [t.name for t in graph.available("DELIVERED", Role.CUSTOMER)] == ["complete"]
    assert graph.available("SETTLED", Role.ADMIN) == []


def test_mermaid_has_every_edge_and_the_initial_state() -> None:
    graph = default_graph()
    mermaid = graph.to_mermaid()
    assert mermaid.startswith("stateDiagram-v2\n")
    assert "[*] --> RECEIVED" in mermaid
    drawn = set(re.findall(r"^    (\w+) --> (\w+): (\w+)$", mermaid, re.MULTILINE))
    assert {(name, s, t) for s, t, name in drawn} == DESIGN_EDGES


def test_dot_has_every_edge() -> None:
    dot = default_graph().to_dot()
    assert dot.startswith("digraph status_graph {") and dot.rstrip().endswith("}")
    drawn = set(re.findall(r'^    (\w+) -> (\w+) \[label="(\w+)"\];$', dot, re.MULTILINE))
    assert {(name, s, t) for s, t, name in drawn} == DESIGN_EDGES


def test_diagrams_show_the_states_and_edges_a_plugin_adds() -> None:
    graph = default_graph()
    graph.add_state("AWAITING_PICKUP", "At a parcel shop.")
    graph.add_transition("ready_for_pickup", "SHIPPED", "AWAITING_PICKUP", {Role.STAFF})
    graph.extend_transition("deliver", sources=("AWAITING_PICKUP",))
    graph.validate()
    assert "SHIPPED --> AWAITING_PICKUP: ready_for_pickup" in graph.to_mermaid()
    assert "AWAITING_PICKUP --> DELIVERED: deliver" in graph.to_mermaid()
    assert 'AWAITING_PICKUP -> DELIVERED [label="deliver"];' in graph.to_dot()
