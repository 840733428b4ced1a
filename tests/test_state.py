"""The session state machine (sans-I/O): synchronous, time passed in as ``now``."""

from __future__ import annotations

import pytest

from sockjs_server.core.framing import encode_message
from sockjs_server.core.state import (
    ANOTHER_CONNECTION_FRAME,
    PUSH_IGNORED,
    PUSH_OVERFLOW,
    TRANSITIONS,
    Attach,
    CloseCode,
    Event,
    IllegalTransition,
    SessionState,
    State,
)

HEARTBEAT = 10.0
DISCONNECT = 5.0
T0 = 1000.0  # any monotonic origin: the machine never reads a clock


def make(now: float = T0, *, max_bytes: int = 1000, max_messages: int = 100) -> SessionState:
    return SessionState(
        now,
        heartbeat_delay=HEARTBEAT,
        disconnect_delay=DISCONNECT,
        max_queue_bytes=max_bytes,
        max_queue_messages=max_messages,
    )


def opened(now: float = T0, **kwargs: int) -> SessionState:
    state = make(now, **kwargs)
    assert state.attach(now) is Attach.ACCEPTED
    assert state.next_frame(now) == "o"
    return state


def drain(state: SessionState, now: float) -> list[str]:
    frames = []
    while (frame := state.next_frame(now)) is not None:
        frames.append(frame)
        if frame[0] == "c":
            break
    return frames


# -- the transition table -------------------------------------------------------------


def test_transition_table() -> None:
    assert TRANSITIONS == {
        (State.CONNECTING, Event.ATTACH): State.OPEN,
        (State.CONNECTING, Event.CLOSE): State.CLOSING,
        (State.CONNECTING, Event.EXPIRE): State.CLOSED,
        (State.CONNECTING, Event.TRANSPORT_CLOSED): State.CLOSED,
        (State.OPEN, Event.CLOSE): State.CLOSING,
        (State.OPEN, Event.INTERRUPT): State.CLOSING,
        (State.OPEN, Event.EXPIRE): State.CLOSED,
        (State.OPEN, Event.TRANSPORT_CLOSED): State.CLOSED,
        (State.CLOSING, Event.EXPIRE): State.CLOSED,
        (State.CLOSING, Event.TRANSPORT_CLOSED): State.CLOSED,
    }


def test_closed_is_final() -> None:
    assert not any(state is State.CLOSED for state, _ in TRANSITIONS)


def test_attaching_to_a_closed_session_is_refused_with_a_message() -> None:
    state = make()
    state.transport_closed()
    assert state.state is State.CLOSED
    with pytest.raises(IllegalTransition, match="closed"):
        state.attach(T0)


def test_close_codes() -> None:
    assert ANOTHER_CONNECTION_FRAME == 'c[2010,"Another connection still open"]'
    assert CloseCode.GO_AWAY == 3000
    assert CloseCode.INTERRUPTED == 1002
    assert CloseCode.ANOTHER_CONNECTION == 2010


# -- opening -------------------------------------------------------------------------------


def test_new_session_waits_for_a_receiver() -> None:
    state = make()
    assert state.state is State.CONNECTING
    assert not state.attached
    assert not state.has_frame()
    assert state.next_frame(T0) is None
    assert state.next_deadline() == T0 + DISCONNECT
    assert not state.closed_for_app


def test_first_receiver_gets_the_open_frame_once() -> None:
    state = make()
    assert state.attach(T0 + 1) is Attach.ACCEPTED
    assert state.state is State.OPEN
    assert state.has_frame()
    assert state.next_frame(T0 + 1) == "o"
    assert state.next_frame(T0 + 1) is None
    state.detach(T0 + 2)
    assert state.attach(T0 + 3) is Attach.ACCEPTED
    assert state.next_frame(T0 + 3) is None


def test_a_second_receiver_is_busy() -> None:
    state = opened()
    assert state.attach(T0) is Attach.BUSY
    assert state.state is State.OPEN
    assert state.attached


def test_session_never_attached_expires() -> None:
    state = make()
    assert state.tick(T0 + DISCONNECT - 0.01) is False
    assert state.tick(T0 + DISCONNECT) is True
    assert state.state is State.CLOSED
    assert state.next_deadline() is None
    assert state.tick(T0 + 100) is False


# -- messages -----------------------------------------------------------------------------


def test_queued_messages_go_out_as_one_batch_in_order() -> None:
    state = opened()
    for text in ("a", "b", "c"):
        assert state.push(encode_message(text), 0.0)
    assert state.has_frame()
    assert state.next_frame(T0) == 'a["a","b","c"]'
    assert state.next_frame(T0) is None


def test_messages_wait_for_the_next_receiver() -> None:
    state = opened()
    state.detach(T0 + 1)
    state.push(encode_message("x"), 0.0)
    state.push(encode_message("y"), 0.0)
    assert state.attach(T0 + 2) is Attach.ACCEPTED
    assert drain(state, T0 + 2) == ['a["x","y"]']


# -- heartbeats --------------------------------------------------------------------------


def test_heartbeat_when_nothing_was_sent_for_heartbeat_delay() -> None:
    state = opened(T0)
    assert state.next_deadline() == T0 + HEARTBEAT
    state.tick(T0 + HEARTBEAT - 0.01)
    assert not state.has_frame()
    state.tick(T0 + HEARTBEAT)
    assert state.has_frame()
    assert state.next_frame(T0 + HEARTBEAT) == "h"
    assert state.next_deadline() == T0 + 2 * HEARTBEAT


def test_any_frame_postpones_the_heartbeat() -> None:
    state = opened(T0)
    state.push(encode_message("x"), 0.0)
    assert state.next_frame(T0 + 4) == 'a["x"]'
    assert state.next_deadline() == T0 + 4 + HEARTBEAT
    state.tick(T0 + HEARTBEAT)
    assert not state.has_frame()


def test_attaching_restarts_the_heartbeat_clock() -> None:
    state = opened(T0)
    state.detach(T0 + 1)
    state.attach(T0 + 3)
    assert state.next_deadline() == T0 + 3 + HEARTBEAT


def test_a_due_heartbeat_does_not_outlive_its_receiver() -> None:
    state = opened(T0)
    state.tick(T0 + HEARTBEAT)
    state.detach(T0 + HEARTBEAT)
    state.attach(T0 + HEARTBEAT + 1)
    assert state.next_frame(T0 + HEARTBEAT + 1) is None


def test_no_expiry_while_a_receiver_is_attached() -> None:
    state = opened(T0)
    assert state.tick(T0 + 100 * DISCONNECT) is False
    assert state.state is State.OPEN


def test_a_due_heartbeat_is_not_a_deadline_in_the_past() -> None:
    # While the receiver is still busy writing an earlier frame (a slow
    # client), the heartbeat stays due. The deadline the driver is told to
    # wake at must then lie ahead: a deadline already passed means "wake me
    # now", again and again, and the runtime spins until the write finishes.
    state = opened(T0)
    now = T0 + HEARTBEAT
    state.tick(now)
    assert state.has_frame()
    deadline = state.next_deadline()
    assert deadline is None or deadline > now


# -- expiry -------------------------------------------------------------------------------


def test_expiry_after_disconnect_delay_without_a_receiver() -> None:
    state = opened(T0)
    state.detach(T0 + 2)
    assert state.next_deadline() == T0 + 2 + DISCONNECT
    assert state.tick(T0 + 2 + DISCONNECT - 0.01) is False
    assert state.state is State.OPEN
    assert state.tick(T0 + 2 + DISCONNECT) is True
    assert state.state is State.CLOSED
    assert state.closed_for_app
    assert state.close_code is not None


def test_a_new_receiver_before_expiry_keeps_the_session() -> None:
    state = opened(T0)
    state.detach(T0 + 1)
    state.attach(T0 + 1 + DISCONNECT - 0.01)
    assert state.tick(T0 + 1 + DISCONNECT + 1) is False
    assert state.state is State.OPEN


def test_detach_without_a_receiver_changes_nothing() -> None:
    state = opened(T0)
    state.detach(T0 + 1)
    state.detach(T0 + 4)
    assert state.next_deadline() == T0 + 1 + DISCONNECT


# -- closing ------------------------------------------------------------------------------


def test_close_delivers_queued_messages_first_then_replays_the_close_frame() -> None:
    state = opened(T0)
    state.push(encode_message("last"), 0.0)
    state.close(3000, "Go away!")
    assert state.state is State.CLOSING
    assert state.closed_for_app
    assert (state.close_code, state.close_reason) == (3000, "Go away!")
    assert drain(state, T0) == ['a["last"]', 'c[3000,"Go away!"]']
    state.detach(T0 + 1)
    for later in (T0 + 2, T0 + 3):
        assert state.attach(later) is Attach.ACCEPTED
        assert drain(state, later) == ['c[3000,"Go away!"]']
        state.detach(later)


def test_closing_session_expires_after_disconnect_delay() -> None:
    state = opened(T0)
    state.close(3000, "Go away!")
    state.detach(T0 + 1)
    assert state.tick(T0 + 1 + DISCONNECT) is True
    assert state.state is State.CLOSED
    assert (state.close_code, state.close_reason) == (3000, "Go away!")


def test_messages_after_close_are_dropped() -> None:
    state = opened(T0)
    state.close(3000, "Go away!")
    assert state.push(encode_message("late"), 0.0) is True
    assert drain(state, T0) == ['c[3000,"Go away!"]']


def test_second_close_keeps_the_first_reason() -> None:
    state = opened(T0)
    state.close(3000, "Go away!")
    state.close(4000, "other")
    assert (state.close_code, state.close_reason) == (3000, "Go away!")


def test_interrupted_receiver_closes_with_1002_and_drops_the_queue() -> None:
    state = opened(T0)
    state.push(encode_message("lost"), 0.0)
    state.detach(T0 + 1, interrupted=True)
    assert state.state is State.CLOSING
    assert (state.close_code, state.close_reason) == (1002, "Connection interrupted")
    state.attach(T0 + 2)
    assert drain(state, T0 + 2) == ['c[1002,"Connection interrupted"]']


def test_an_orderly_detach_is_not_an_interruption() -> None:
    state = opened(T0)
    state.detach(T0 + 1, interrupted=False)
    assert state.state is State.OPEN


def test_interrupting_a_closing_session_keeps_its_close_frame() -> None:
    state = opened(T0)
    state.close(3000, "Go away!")
    state.detach(T0, interrupted=True)
    assert state.close_code == 3000


def test_transport_closed_ends_the_session_at_once() -> None:
    state = opened(T0)
    state.push(encode_message("x"), 0.0)
    state.transport_closed(1006, "")
    assert state.state is State.CLOSED
    assert not state.attached
    assert state.close_code == 1006
    assert state.next_frame(T0) is None
    assert state.next_deadline() is None
    state.transport_closed()  # idempotent


def test_transport_closed_after_close_keeps_the_application_code() -> None:
    state = opened(T0)
    state.close(3000, "Go away!")
    state.transport_closed(1000)
    assert (state.close_code, state.close_reason) == (3000, "Go away!")


def test_close_before_any_receiver() -> None:
    state = make(T0)
    state.close(3000, "Go away!")
    assert state.state is State.CLOSING
    assert state.attach(T0 + 1) is Attach.ACCEPTED
    assert drain(state, T0 + 1)[-1] == 'c[3000,"Go away!"]'


# -- bounded outgoing queue -----------------------------------------------------------------


def test_queue_overflow_by_count_closes_with_3001() -> None:
    state = opened(T0, max_messages=3)
    state.detach(T0)
    for text in "abc":
        assert state.push(encode_message(text), 0.0) is True
    assert state.push(encode_message("d"), 0.0) is False
    assert state.state is State.CLOSING
    assert (state.close_code, state.close_reason) == (3001, "Send queue overflow")
    state.attach(T0 + 1)
    assert drain(state, T0 + 1) == ['c[3001,"Send queue overflow"]']


def test_queue_overflow_by_bytes() -> None:
    state = opened(T0, max_bytes=20)
    state.detach(T0)
    assert state.push(encode_message("x" * 10), 0.0) is True  # 12 bytes encoded
    assert state.push(encode_message("y" * 10), 0.0) is False
    assert state.close_code == CloseCode.QUEUE_OVERFLOW


def test_queue_exactly_at_the_limit_is_fine() -> None:
    state = opened(T0, max_bytes=12, max_messages=1)
    assert state.push(encode_message("x" * 10), 0.0) is True
    assert state.state is State.OPEN
    assert drain(state, T0) == ['a["xxxxxxxxxx"]']
    # Sending empties the queue: the limit is on what is waiting, not on the total.
    assert state.push(encode_message("y" * 10), 0.0) is True


def test_push_sized_answers_the_bytes_queued() -> None:
    state = opened(T0, max_bytes=20)
    assert state.push_sized('"abc"', 5, T0) == 5
    assert state.push_sized('"defgh"', 7, T0) == 12
    assert state.push_sized('"' + "x" * 10 + '"', 12, T0) == PUSH_OVERFLOW
    assert (state.close_code, state.queued_bytes) == (CloseCode.QUEUE_OVERFLOW, 0)
    # Once closing, nothing more is queued.
    assert state.push_sized('"late"', 6, T0) == PUSH_IGNORED
    assert state.queued_bytes == 0


def test_the_first_waiting_message_starts_the_take_deadline() -> None:
    state = SessionState(
        T0, heartbeat_delay=HEARTBEAT, disconnect_delay=DISCONNECT, max_queue_bytes=1000, max_queue_messages=100,
        send_timeout=3.0,
    )  # fmt: skip
    state.attach(T0)
    assert state.next_frame(T0) == "o"
    assert state.next_deadline() == T0 + HEARTBEAT
    state.push_sized('"a"', 3, T0 + 1)
    assert state.next_deadline() == T0 + 4
    # Messages joining it do not move it (the session re-arms its timer only for the first).
    state.push_sized('"b"', 3, T0 + 2)
    assert state.next_deadline() == T0 + 4
    assert state.tick(T0 + 4) is False
    assert state.slow_consumer
    assert (state.close_code, state.close_reason) == (3001, "Slow consumer")


def test_take_queue_hands_over_raw_messages() -> None:
    state = opened(T0)
    state.push("one", T0)
    state.push("two", T0)
    assert state.take_queue(T0 + 1) == ["one", "two"]
    assert state.take_queue(T0 + 1) == []
    assert state.next_deadline() == T0 + 1 + HEARTBEAT
