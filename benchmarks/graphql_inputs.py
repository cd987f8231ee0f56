"""What turning a request's GraphQL input into Python objects costs: ``submitOrder``'s
input of 3 lines converted by strawberry's own field-by-field conversion and by the
input types' ``from_input`` of ``ordergraph.graphql.inputs``, in turns.

    .venv/bin/python benchmarks/graphql_inputs.py [--rounds R] [--times N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import ADDRESS, EMAIL, markdown_table
from strawberry.types.arguments import convert_arguments

from ordergraph.core import assembly
from ordergraph.core.settings import Settings
from ordergraph.graphql.inputs import input_definitions
from ordergraph.graphql.schema import build_schema

INPUT = {
    "input": {
        "externalId": "BENCH-1",
        "customerEmail": EMAIL,
        "lines": [{"sku": sku, "quantity": 1} for sku in ("MUG", "TEE", "LAMP")],
        "shippingAddress": ADDRESS,
    }
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="turns of both (5)")
    parser.add_argument("--times", type=int, default=20_000, help="conversions per run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        rt = assembly.build(Settings(database_url=f"sqlite:///{Path(directory) / 'b.db'}"))
        schema = build_schema(rt)
    mutation = schema.get_type_by_name("Mutation")
    field = next(f for f in mutation.fields if f.python_name == "submit_order")
    inputs = input_definitions(schema)
    built_once = {definition: definition.from_input for definition in inputs}

    def convert() -> None:
        convert_arguments(INPUT, field.arguments, schema.schema_converter.scalar_registry,
                          schema.config)  # fmt: skip

    def strawberrys() -> float:
        for definition in inputs:
            definition.from_input = None
        try:
            return per_call(convert, args.times)
        finally:
            for definition, from_input in built_once.items():
                definition.from_input = from_input

    runs: dict[str, list[float]] = {"strawberry's conversion": [], "built once": []}
    for _ in range(args.rounds):
        runs["strawberry's conversion"].append(strawberrys())
        runs["built once"].append(per_call(convert, args.times))
    rows = [
        [name, str(len(times)), f"{statistics.median(times):.1f}", f"{min(times):.1f}"]
        for name, times in runs.items()
    ]
    print(markdown_table(["submitOrder input converted by", "runs", "median µs", "best µs"], rows))


def per_call(function: Callable[[], None], times: int) -> float:
    """Microseconds per call, after a warm-up."""
    for _ in range(times // 20):
        function()
    started = time.perf_counter()
    for _ in range(times):
        function()
    return 1e6 * (time.perf_counter() - started) / times


if __name__ == "__main__":
    main()
