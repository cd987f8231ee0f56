"""Assignment rules: ordered rules route an order to a team; a strategy picks the person.

A rule is one line, conditions then ``->`` and the team, optionally with its strategy::

    "type=wholesale -> bulk"
    "priority=URGENT,HIGH country=GB,IE -> express round_robin"
    "amount>=500 channel=shopify -> premium"
    "-> warehouse"

Conditions on ``type``, ``priority``, ``channel`` and ``country`` (of the shipping
address) take a comma-separated list; ``amount`` compares the order total with ``>=``,
``>``, ``<=`` or ``<``. The first rule whose conditions all hold wins. Within the team,
``least_loaded`` picks the member with the least open work, weighted by priority (an
urgent order weighs more than a low one), and ``round_robin`` the next member after the
last one assigned. Members who are away, at capacity, or do not handle the order's type
are skipped; when nobody is left the order waits in the team's queue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from ordergraph.plugin_api import (
    AssignmentChoice,
    Candidate,
    OrderView,
    PluginInfo,
    Setting,
    TeamView,
    hookimpl,
)

STRATEGIES = ("least_loaded", "round_robin")
DEFAULT_WEIGHTS = {"LOW": 1, "NORMAL": 2, "HIGH": 3, "URGENT": 5}
_LIST_KEYS = ("type", "priority", "channel", "country")
_AMOUNT = re.compile(r"^amount(>=|<=|>|<)(\d+(?:\.\d+)?)$")


@dataclass(frozen=True)
class Rule:
    text: str
    team: str
    strategy: str | None
    lists: tuple[tuple[str, frozenset[str]], ...]
    amounts: tuple[tuple[str, Decimal], ...]

    def matches(self, order: OrderView) -> bool:
        values = {
            "type": order.type,
            "priority": order.priority,
            "channel": order.channel,
            "country": str(order.shipping_address.get("country", "")).upper(),
        }
        if any(values[key] not in allowed for key, allowed in self.lists):
            return False
        compare = {
            ">=": order.total.__ge__,
            ">": order.total.__gt__,
            "<=": order.total.__le__,
            "<": order.total.__lt__,
        }
        return all(compare[op](limit) for op, limit in self.amounts)


def parse_rule(text: str) -> Rule:
    conditions, arrow, target = text.partition("->")
    if not arrow:
        raise ValueError(f"{text!r}: a rule is 'conditions -> team [strategy]'")
    target_words = target.split()
    if not 1 <= len(target_words) <= 2:
        raise ValueError(f"{text!r}: name one team after '->', optionally a strategy")
    strategy = target_words[1] if len(target_words) == 2 else None
    if strategy is not None and strategy not in STRATEGIES:
        raise ValueError(f"{text!r}: the strategy is one of {', '.join(STRATEGIES)}")
    lists, amounts = [], []
    for word in conditions.split():
        amount = _AMOUNT.match(word)
        if amount:
            try:
                amounts.append((amount.group(1), Decimal(amount.group(2))))
            except InvalidOperation:
                raise ValueError(f"{text!r}: {word!r} is not an amount") from None
            continue
        key, equals, values = word.partition("=")
        if not equals or key not in _LIST_KEYS or not values:
            raise ValueError(
                f"{text!r}: {word!r} is not a condition (use type=, priority=, channel=, "
                "country= with comma-separated values, or amount>=N)"
            )
        allowed = frozenset(
            v.upper() if key in ("priority", "country") else v for v in values.split(",")
        )
        lists.append((key, allowed))
    return Rule(text, target_words[0], strategy, tuple(lists), tuple(amounts))


def parse_rules(texts: list[str]) -> list[Rule]:
    rules = []
    for i, text in enumerate(texts):
        try:
            rules.append(parse_rule(text))
        except ValueError as exc:
            raise ValueError(f"rule {i + 1}: {exc}") from None
    return rules


def _weights(table: dict[str, int]) -> dict[str, int]:
    unknown = sorted(set(table) - set(DEFAULT_WEIGHTS))
    if unknown:
        raise ValueError(f"{unknown[0]} is not a priority (LOW, NORMAL, HIGH, URGENT)")
    if any(weight < 1 for weight in table.values()):
        raise ValueError("every weight is a whole number of at least 1")
    return {**DEFAULT_WEIGHTS, **table}


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        category="assignment",
        description=(
            "Ordered rules route approved orders to a team by type, priority, channel, "
            "amount and country; least_loaded (weighted by priority) or round_robin "
            "picks the member."
        ),
        settings=(
            Setting(
                "rules",
                list,
                default=[],
                description="Rules in order, 'conditions -> team [strategy]'; first match wins.",
                parse=parse_rules,
            ),
            Setting(
                "strategy",
                str,
                default="least_loaded",
                choices=STRATEGIES,
                description="The strategy of rules that name none.",
            ),
            Setting(
                "priority_weights",
                dict,
                default=dict(DEFAULT_WEIGHTS),
                item_type=int,
                description="How much an open order of each priority adds to a member's load.",
                parse=_weights,
            ),
        ),
    )


def load(member: Candidate, weights: dict[str, int]) -> int:
    return sum(weights.get(priority, 1) * n for priority, n in member.open_by_priority.items())


def _round_robin(team: TeamView, eligible: list[Candidate]) -> Candidate:
    """The first eligible member after the last one assigned, in member order."""
    order = list(team.members)
    start = next((i + 1 for i, m in enumerate(order) if m.staff == team.last_assigned), 0)
    ring = order[start:] + order[:start]
    return next(m for m in ring if m in eligible)


@hookimpl
def assign_order(
    order: OrderView, teams: list[TeamView], settings: dict[str, Any]
) -> AssignmentChoice | None:
    rules: list[Rule] = settings["rules"]
    weights: dict[str, int] = settings["priority_weights"]
    for number, rule in enumerate(rules, start=1):
        if not rule.matches(order):
            continue
        matched = f"rule {number}: {rule.text}"
        team = next((t for t in teams if t.name == rule.team), None)
        if team is None:
            return AssignmentChoice(team=rule.team, rule=matched)
        strategy = rule.strategy or settings["strategy"]
        loads = {m.staff: load(m, weights) for m in team.members}
        eligible = [m for m in team.members if m.skipped is None]
        explanation: dict[str, Any] = {"rule": matched, "strategy": strategy, "loads": loads}
        if not eligible:
            why = "nobody in the team can take it now; it waits in the team's queue"
            return AssignmentChoice(team.name, None, matched, {**explanation, "why": why})
        if strategy == "round_robin":
            chosen = _round_robin(team, eligible)
            why = f"next after {team.last_assigned or 'the start'} in turn"
        else:
            chosen = min(eligible, key=lambda m: (loads[m.staff], m.open_orders, m.id))
            why = f"lowest load ({loads[chosen.staff]}) among those who can take it"
        return AssignmentChoice(
            team.name, chosen.staff, matched, {**explanation, "chosen": chosen.staff, "why": why}
        )
    return None
