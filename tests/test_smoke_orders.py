"""Submitting an order and moving it along the graph, through the real ASGI app."""

from conftest import Api, submit

TRANSITION = """
mutation Move($id: ID!, $t: String!, $v: Int) {
  transitionOrder(id: $id, transition: $t, expectedVersion: $v) {
    order { status version events { type fromStatus toStatus actor } }
    errors { field code message }
  }
}
"""


async def test_submit_then_start_review_appends_to_the_timeline(api: Api) -> None:
    order = await submit(api)
    assert order["status"] == "RECEIVED"
    assert order["total"] == "25.00"

    data = await api.data(TRANSITION, {"id": order["id"], "t": "start_review", "v": 1})
    moved = data["transitionOrder"]["order"]
    assert moved["status"] == "IN_REVIEW"
    assert moved["version"] == 2
    assert [(e["type"], e["toStatus"]) for e in moved["events"]] == [
        ("submitted", "RECEIVED"),
        ("transition", "IN_REVIEW"),
    ]
