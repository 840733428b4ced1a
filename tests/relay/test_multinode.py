"""Two server nodes relaying to one RabbitMQ: one chat, one set of users."""

from __future__ import annotations

import json

import pytest
from conftest import MakeNode, unique

from sockjs_server.stomp import AppMessage

pytestmark = pytest.mark.rabbitmq


def login_as_user(info: object) -> str | None:
    return getattr(info, "login", None)


async def test_cross_node_topic_chat(make_node: MakeNode) -> None:
    node1 = await make_node()
    node2 = await make_node()
    room = f"/topic/{unique('room')}"
    ann = await node1.connected("websocket")
    bob = await node2.connected("xhr-streaming")
    await ann.subscribe(room, "r")
    await bob.subscribe(room, "r")
    await ann.send(room, "hi from node 1", receipt="a")
    await bob.send(room, "hi from node 2", receipt="b")
    for client in (ann, bob):
        texts = [(await client.expect("MESSAGE")).text for _ in range(2)]
        assert sorted(texts) == ["hi from node 1", "hi from node 2"]


async def test_send_to_user_reaches_another_node(make_node: MakeNode) -> None:
    node1 = await make_node(authenticate=login_as_user)
    node2 = await make_node(authenticate=login_as_user)
    alice_on_2 = await node2.connected("websocket", login="alice")
    alice_on_1 = await node1.connected("xhr-polling", login="alice")
    for client in (alice_on_1, alice_on_2):
        await client.subscribe("/user/queue/inbox", "in")
    # Server code on node 1, where alice also is, and where she is not.
    await node1.stomp.send_to_user("alice", "/queue/inbox", {"n": 1})
    for client in (alice_on_1, alice_on_2):
        frame = await client.expect("MESSAGE")
        assert json.loads(frame.body) == {"n": 1}
        assert frame["destination"] == "/user/queue/inbox"
        assert frame["content-type"] == "application/json"
    await alice_on_1.disconnect()
    await node1.stomp.send_to_user("alice", "/queue/inbox", "only node 2 has her now")
    assert (await alice_on_2.expect("MESSAGE")).text == "only node 2 has her now"
    # A client on node 1 writing to /user/alice/... reaches her on node 2, signed.
    carol = await node1.connected("websocket", login="carol")
    await carol.send("/user/alice/queue/inbox", "psst", receipt="p")
    frame = await alice_on_2.expect("MESSAGE")
    assert frame.text == "psst"
    await alice_on_2.no_frame(0.2)


async def test_app_handlers_run_on_the_receiving_node(make_node: MakeNode) -> None:
    room = unique("room")
    ran: list[str] = []
    nodes = []
    for name in ("node1", "node2"):
        node = await make_node()

        def make_handler(name: str = name):  # type: ignore[no-untyped-def]
            async def chat(msg: AppMessage) -> dict[str, str]:
                ran.append(name)
                return {"node": name, "text": msg.text}

            return chat

        node.stomp.message("/chat.{room}", send_to="/topic/chat.{room}")(make_handler())
        nodes.append(node)
    listener = await nodes[0].connected()
    await listener.subscribe(f"/topic/chat.{room}", "c")
    speaker = await nodes[1].connected("xhr-streaming")
    await speaker.send(f"/app/chat.{room}", "hello", receipt="s")
    frame = await listener.expect("MESSAGE")
    assert json.loads(frame.body) == {"node": "node2", "text": "hello"}
    assert ran == ["node2"]


async def test_queue_consumers_on_two_nodes_share_the_work(make_node: MakeNode) -> None:
    from conftest import QUEUE_ARGS

    node1 = await make_node()
    node2 = await make_node()
    queue = f"/queue/{unique()}"
    workers = [await node1.connected(), await node2.connected()]
    for i, worker in enumerate(workers):
        await worker.subscribe(queue, f"w{i}", ack="client-individual", prefetch_count="2", **QUEUE_ARGS)
    producer = await node1.connected()
    for i in range(4):
        await producer.send(queue, f"job{i}", receipt=f"j{i}", **QUEUE_ARGS)
    # RabbitMQ hands the jobs round robin to the workers, whichever node they are on.
    done: list[str] = []
    for worker in workers:
        for _ in range(2):
            frame = await worker.expect("MESSAGE")
            done.append(frame.text)
            await worker.send_frame("ACK", {"id": frame["ack"], "receipt": "ok"})
            await worker.receipt("ok")
        await worker.no_frame(0.2)
    assert sorted(done) == ["job0", "job1", "job2", "job3"]
