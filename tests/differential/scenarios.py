r"""The scenarios: scripted client conversations, as data.

Script lines (one step each; ``#`` starts a comment):

* ``c1 login 1.2 [header:value ...]``: CONNECT (accept-version, the run's
  vhost, guest/guest, ``heart-beat:0,0`` unless given) and wait for the answer;
  ``login 1.0`` sends no accept-version.
* ``c1> COMMAND h:v h:v | body``: write a frame, headers exactly as written
  (no escaping: write ``\c`` yourself); ``c1~ ...`` writes it three bytes at a time.
* ``c1>> bytes``: write raw bytes.
* ``c1? receipt r1`` / ``c1? error`` / ``c1? msg [n]`` / ``c1? frame`` /
  ``c1? closed [s]`` / ``c1? beat [s]`` / ``c1? quiet [s]``: read (and record)
  until that arrives (a timeout is recorded too).
* ``sleep 0.2``.

Placeholders: ``{u}`` a name unique to the run, ``{vhost}``, ``{sp}`` ``{lf}``
``{cr}`` ``{nul}`` ``{bs}`` ``{tab}`` ``{bar}``, ``{ack1}`` / ``{mid1}`` /
``{reply1}`` / ``{dest1}`` the ack / message-id / reply-to / destination
header of the first MESSAGE this connection received (``{c2.ack1}``: another
connection's).

After the last step every connection still open is sent ``DISCONNECT
receipt:bye``, so each transcript also says whether the connection survived.
"""

from __future__ import annotations

from dataclasses import dataclass

from .harness import Result, Step, parse_script, without_error_bodies


@dataclass(frozen=True)
class Scenario:
    name: str
    area: str
    script: str
    #: Why the MemoryBroker cannot run it (a RabbitMQ-only feature); still checked on the relay.
    rabbit_only: str | None = None
    #: Also played over a SockJS websocket against our servers.
    sockjs: bool = False
    #: A deliberate difference of our server (both brokers): the README's
    #: "Differences from RabbitMQ" row that explains it.
    differs: str | None = None
    #: For destinations only our server has (``/app``, ``/user``): the script
    #: RabbitMQ plays instead, its equivalent conversation (an unknown or an
    #: unused destination). ERROR bodies, which name the reason in each
    #: server's words, are then left out of the comparison.
    reference: str | None = None

    @property
    def steps(self) -> tuple[Step, ...]:
        return parse_script(self.script)

    @property
    def reference_steps(self) -> tuple[Step, ...]:
        """What RabbitMQ plays: the equivalent script, or the scenario itself."""
        return parse_script(self.reference) if self.reference is not None else self.steps

    def compared(self, result: Result) -> list[str]:
        """The transcript lines that must agree."""
        lines = result.lines()
        return lines if self.reference is None else without_error_bodies(lines)


SCENARIOS: list[Scenario] = []


def S(area: str, name: str, script: str, **kw: object) -> None:
    SCENARIOS.append(Scenario(f"{area}/{name}", area, script, **kw))  # type: ignore[arg-type]


VERSIONS = ("1.0", "1.1", "1.2")
EXCHANGE = "RabbitMQ exchanges (/exchange/...) are not modelled by the MemoryBroker"

# --- CONNECT / STOMP and version negotiation ----------------------------------------------

for v in VERSIONS:
    S("connect", f"login-{v}", f"c1 login {v}", sockjs=True)
S("connect", "stomp-command", "c1> STOMP accept-version:1.2 host:{vhost} login:guest passcode:guest heart-beat:0,0\nc1? frame")
S("connect", "stomp-command-1.1", "c1> STOMP accept-version:1.1 host:{vhost} login:guest passcode:guest\nc1? frame")
for accept in ("1.0,1.1", "1.1,1.2", "1.0,1.2", "1.2,1.0", "1.0,1.1,1.2", "1.1,1.0", "2.0", "1.3,2.0", "1.2{sp}", "1.0,2.0"):
    S("connect", f"accept-{accept.replace('{sp}', '-space')}", f"c1> CONNECT accept-version:{accept} host:{{vhost}} login:guest passcode:guest\nc1? frame")
S("connect", "accept-empty", "c1> CONNECT accept-version: host:{vhost} login:guest passcode:guest\nc1? frame")
S("connect", "no-host", "c1> CONNECT accept-version:1.2 login:guest passcode:guest\nc1? frame")
S("connect", "no-credentials", "c1> CONNECT accept-version:1.2 host:{vhost}\nc1? frame")
S("connect", "twice", "c1 login 1.2\nc1> CONNECT accept-version:1.2 host:{vhost} login:guest passcode:guest receipt:r\nc1? frame")
S("connect", "send-before-connect", "c1> SEND destination:/topic/{u} | early\nc1? frame")
S("connect", "subscribe-before-connect", "c1> SUBSCRIBE id:s destination:/topic/{u} receipt:r\nc1? frame")
S("connect", "disconnect-before-connect", "c1> DISCONNECT receipt:early\nc1? frame")
S("connect", "version-mismatch-then-connect", "c1> CONNECT accept-version:9.9 host:{vhost} login:guest passcode:guest\nc1? error\nc1 login 1.2")
S("connect", "connect-with-receipt", "c1> CONNECT accept-version:1.2 host:{vhost} login:guest passcode:guest receipt:rc\nc1? frame\nc1? quiet 0.2")
S("connect", "connect-1.0-heart-beat", "c1> CONNECT host:{vhost} login:guest passcode:guest heart-beat:1000,1000\nc1? frame")
S("connect", "connect-escaped-login", "c1> CONNECT accept-version:1.2 host:{vhost} login:guest passcode:guest x-colon:a:b\nc1? frame")

# --- heart-beat negotiation ----------------------------------------------------------------------

for hb in ("0,0", "1000,0", "0,1000", "1000,500", "500,1000", "2500,0", "0,2500", "300,300", "10000,10000", "1,1", "0,1999", "60000,0"):
    S("heart-beat", f"negotiate-{hb}", f"c1 login 1.2 heart-beat:{hb}")
S("heart-beat", "negotiate-1.1", "c1 login 1.1 heart-beat:5000,5000")
for bad in ("x,y", "1000", "1000,1000,1000", "-1,0", "", "1000;1000"):
    S("heart-beat", f"invalid-{bad or 'empty'}", f"c1> CONNECT accept-version:1.2 host:{{vhost}} login:guest passcode:guest heart-beat:{bad}\nc1? frame")
S("heart-beat", "server-beats", "c1 login 1.2 heart-beat:0,1000\nc1? beat 2")
S("heart-beat", "client-beats-keep-alive", "c1 login 1.2 heart-beat:1000,0\n" + "\n".join(["sleep 0.5\nc1>> {lf}"] * 8))

# --- destinations ------------------------------------------------------------------------------------

GOOD = {
    "topic": "/topic/{u}",
    "topic-dotted": "/topic/{u}.a.b",
    "queue": "/queue/{u}",
    "topic-unicode": "/topic/{u}-żółć",
    "queue-unicode": "/queue/{u}-żółć",
    "topic-percent": "/topic/{u}%41",
}
for kind, dest in GOOD.items():
    S("destination", f"{kind}-roundtrip", f"""
c1 login 1.2
c1> SUBSCRIBE id:s1 destination:{dest} receipt:r1
c1? receipt r1
c1> SEND destination:{dest} receipt:r2 | to {kind}
c1? receipt r2
c1? msg
""", sockjs=kind == "topic")
BAD = {
    "empty": "",
    "slash": "/",
    "topic-bare": "/topic",
    "topic-slash": "/topic/",
    "queue-bare": "/queue",
    "queue-slash": "/queue/",
    "queue-extra-slash": "/queue/{u}/b",
    "topic-extra-slash": "/topic/{u}/b",
    "topic-double-slash": "/topic//{u}",
    "leading-double-slash": "//topic/{u}",
    "unknown-kind": "/foo/bar",
    "no-leading-slash": "chat",
    "amq-queue-slash": "/amq/queue/",
    "amq-queue-extra-slash": "/amq/queue/{u}/b",
    "temp-queue-slash": "/temp-queue/",
    "reply-queue-slash": "/reply-queue/",
    "exchange-slash": "/exchange/",
    "topic-tab": "/topic/{u}{tab}x",
    "queue-control": "/queue/{u}\x01x",
}
for kind, dest in BAD.items():
    S("destination", f"subscribe-{kind}", f"c1 login 1.2\nc1> SUBSCRIBE id:s1 destination:{dest} receipt:r1\nc1? frame")
    S("destination", f"send-{kind}", f"c1 login 1.2\nc1> SEND destination:{dest} receipt:r1 | x\nc1? frame")
S("destination", "amq-queue-missing", "c1 login 1.2\nc1> SUBSCRIBE id:s1 destination:/amq/queue/{u} receipt:r1\nc1? frame", rabbit_only="/amq/queue/ of a queue that was never declared")
S("destination", "amq-queue-existing", """
c1 login 1.2
c1> SUBSCRIBE id:s1 destination:/queue/{u} receipt:r1
c1? receipt r1
c1> SUBSCRIBE id:s2 destination:/amq/queue/{u} receipt:r2
c1? receipt r2
c1> SEND destination:/amq/queue/{u} receipt:r3 | one
c1? receipt r3
c1? msg
""")
S("destination", "exchange-amq-topic", """
c1 login 1.2
c1> SUBSCRIBE id:s1 destination:/exchange/amq.topic/{u}.* receipt:r1
c1? receipt r1
c1> SEND destination:/exchange/amq.topic/{u}.a receipt:r2 | via exchange
c1? receipt r2
c1> SEND destination:/topic/{u}.b receipt:r3 | via topic
c1? receipt r3
c1? msg 2
""")
S("destination", "exchange-amq-direct", """
c1 login 1.2
c1> SUBSCRIBE id:s1 destination:/exchange/amq.direct/{u} receipt:r1
c1? receipt r1
c1> SEND destination:/exchange/amq.direct/{u} receipt:r2 | direct
c1? receipt r2
c1? msg
""", rabbit_only=EXCHANGE)
S("destination", "exchange-amq-fanout", """
c1 login 1.2
c1> SUBSCRIBE id:s1 destination:/exchange/amq.fanout receipt:r1
c1? receipt r1
c1> SEND destination:/exchange/amq.fanout/{u} receipt:r2 | fanout
c1? receipt r2
c1? msg
""", rabbit_only=EXCHANGE)
S("destination", "exchange-missing-subscribe", "c1 login 1.2\nc1> SUBSCRIBE id:s1 destination:/exchange/{u}/x receipt:r1\nc1? frame\nc1? quiet 0.2", rabbit_only=EXCHANGE)
S("destination", "exchange-missing-send", "c1 login 1.2\nc1> SEND destination:/exchange/{u}/x receipt:r1 | x\nc1? frame\nc1? quiet 0.2", rabbit_only=EXCHANGE)
S("destination", "temp-queue-reply", """
c1 login 1.2
c2 login 1.2
c2> SUBSCRIBE id:s1 destination:/queue/{u} receipt:r1
c2? receipt r1
c1> SEND destination:/queue/{u} reply-to:/temp-queue/answers receipt:r2 | ask
c1? receipt r2
c2? msg
c2> SEND destination:{reply1} receipt:r3 | answer
c2? receipt r3
c1? msg
""", rabbit_only="/temp-queue/ and /reply-queue/ replies")
S("destination", "wildcard-hash", """
c1 login 1.2
c1> SUBSCRIBE id:s1 destination:/topic/{u}.# receipt:r1
c1? receipt r1
c1> SEND destination:/topic/{u}.a.b.c | deep
c1> SEND destination:/topic/{u} | bare
c1> SEND destination:/topic/other{u} receipt:r2 | other
c1? receipt r2
""")
S("destination", "wildcard-star", """
c1 login 1.2
c1> SUBSCRIBE id:s1 destination:/topic/{u}.* receipt:r1
c1? receipt r1
c1> SEND destination:/topic/{u}.a.b | two words
c1> SEND destination:/topic/{u}.a | one word
c1> SEND destination:/topic/{u} receipt:r2 | none
c1? receipt r2
""")
S("destination", "long-name", "c1 login 1.2\nc1> SUBSCRIBE id:s1 destination:/queue/{u}" + "x" * 300 + " receipt:r1\nc1? frame")

# --- SEND and SUBSCRIBE headers ------------------------------------------------------------------

SUB_TOPIC = "c1 login 1.2\nc1> SUBSCRIBE id:s1 destination:/topic/{u} receipt:r1\nc1? receipt r1\n"
SUB_QUEUE = "c1 login 1.2\nc1> SUBSCRIBE id:s1 destination:/queue/{u} receipt:r1\nc1? receipt r1\n"
SEND_HEADERS = {
    "content-type": "content-type:application/json",
    "custom": "x-custom:hello x-other:two",
    "expiration": "expiration:60000",
    "persistent": "persistent:true",
    "priority": "priority:5",
    "repeated": "x-rep:first x-rep:second",
    "empty-value": "x-empty:",
    "escaped-colon": r"x-esc:a\cb\nc\\d",
    "subscription-forged": "subscription:forged",
    "redelivered-forged": "redelivered:true",
    "ack-forged": "ack:forged",
    "correlation-id": "correlation-id:c-1 reply-to:/queue/{u}-replies",
    "content-length-given": "content-length:5",
    "transaction-less": "x-transaction:none",
    "user-id-own": "user-id:guest",
    "app-id": "app-id:my-app type:t1 timestamp:12345",
}
for name, headers in SEND_HEADERS.items():
    for dest, sub in (("topic", SUB_TOPIC), ("queue", SUB_QUEUE)):
        if dest == "queue" and name not in ("persistent", "custom", "message-id", "expiration", "priority", "content-type", "repeated"):
            continue
        body = "hello" if name == "content-length-given" else f"with {name}"
        S("headers", f"send-{name}-{dest}", sub + f"c1> SEND destination:/{dest}/{{u}} {headers} receipt:r2 | {body}\nc1? receipt r2\nc1? msg")
S("headers", "send-message-id", SUB_TOPIC + "c1> SEND destination:/topic/{u} message-id:mine receipt:r2 | x\nc1? frame")
S("headers", "send-user-id-other", SUB_TOPIC + "c1> SEND destination:/topic/{u} user-id:mallory receipt:r2 | forged\nc1? frame\nc1? quiet 0.2")
S("headers", "send-empty-header-name", SUB_TOPIC + "c1> SEND destination:/topic/{u} :value receipt:r2 | x\nc1? frame\nc1? quiet 0.2")
S("headers", "subscribe-empty-header-name", "c1 login 1.2\nc1> SUBSCRIBE id:s1 destination:/topic/{u} :v receipt:r1\nc1? frame")
S("headers", "send-1.1-escapes", "c1 login 1.1\nc1> SUBSCRIBE id:s1 destination:/topic/{u} receipt:r1\nc1? receipt r1\n" + r"c1> SEND destination:/topic/{u} x-esc:a\cb\nc\\d receipt:r2 | x" + "\nc1? receipt r2")
S("headers", "send-1.0-no-escapes", "c1 login 1.0\nc1> SUBSCRIBE id:s1 destination:/topic/{u} receipt:r1\nc1? receipt r1\n" + r"c1> SEND destination:/topic/{u} x-esc:a\cb\nc\\d receipt:r2 | x" + "\nc1? receipt r2")
S("headers", "send-1.1-cr-escape", "c1 login 1.1\n" + r"c1> SEND destination:/topic/{u} x-esc:a\rb receipt:r2 | x" + "\nc1? frame")
S("headers", "send-1.2-bad-escape", "c1 login 1.2\n" + r"c1> SEND destination:/topic/{u} x-esc:a\tb receipt:r2 | x" + "\nc1? frame")
S("headers", "send-unicode-header", SUB_TOPIC + "c1> SEND destination:/topic/{u} x-ż:ółć receipt:r2 | żółć\nc1? receipt r2")
S("headers", "subscribe-selector-ignored", "c1 login 1.2\nc1> SUBSCRIBE id:s1 destination:/topic/{u} selector:a=1 receipt:r1\nc1? receipt r1\nc1> SEND destination:/topic/{u} receipt:r2 | x\nc1? receipt r2")
S("headers", "subscribe-custom-header", "c1 login 1.2\nc1> SUBSCRIBE id:s1 destination:/topic/{u} x-mine:1 receipt:r1\nc1? receipt r1\nc1> SEND destination:/topic/{u} receipt:r2 | x\nc1? receipt r2")
S("headers", "subscribe-no-id-1.2", "c1 login 1.2\nc1> SUBSCRIBE destination:/topic/{u} receipt:r1\nc1? frame\nc1> SEND destination:/topic/{u} receipt:r2 | x\nc1? receipt r2")
S("headers", "subscribe-no-id-1.1", "c1 login 1.1\nc1> SUBSCRIBE destination:/topic/{u} receipt:r1\nc1? frame\nc1> SEND destination:/topic/{u} receipt:r2 | x\nc1? receipt r2")
S("headers", "subscribe-no-id-1.0", "c1 login 1.0\nc1> SUBSCRIBE destination:/topic/{u} receipt:r1\nc1? frame\nc1> SEND destination:/topic/{u} receipt:r2 | x\nc1? receipt r2")
S("headers", "subscribe-no-id-queue-1.0", "c1 login 1.0\nc1> SUBSCRIBE destination:/queue/{u} receipt:r1\nc1? frame\nc1> SEND destination:/queue/{u} receipt:r2 | x\nc1? receipt r2\nc1? msg")
S("headers", "subscribe-bad-ack", "c1 login 1.2\nc1> SUBSCRIBE id:s1 destination:/topic/{u} ack:sometimes receipt:r1\nc1? frame")
S("headers", "duplicate-subscription", "c1 login 1.2\nc1> SUBSCRIBE id:same destination:/topic/{u} receipt:r0\nc1? receipt r0\nc1> SUBSCRIBE id:same destination:/topic/{u}-b receipt:r1\nc1? frame\nc1? quiet 0.2")
S("headers", "two-subscriptions-same-topic", """
c1 login 1.2
c1> SUBSCRIBE id:a destination:/topic/{u} receipt:r0
c1? receipt r0
c1> SUBSCRIBE id:b destination:/topic/{u} receipt:r1
c1? receipt r1
c1> SEND destination:/topic/{u} receipt:r2 | twice
c1? receipt r2
""")
S("headers", "unsubscribe-then-send", """
c1 login 1.2
c1> SUBSCRIBE id:a destination:/topic/{u} receipt:r0
c1? receipt r0
c1> UNSUBSCRIBE id:a receipt:r1
c1? receipt r1
c1> SEND destination:/topic/{u} receipt:r2 | nobody
c1? receipt r2
""")
S("headers", "unsubscribe-unknown", "c1 login 1.2\nc1> UNSUBSCRIBE id:nope receipt:r1\nc1? frame")
S("headers", "unsubscribe-no-id", "c1 login 1.2\nc1> UNSUBSCRIBE receipt:r1\nc1? frame")
S("headers", "unsubscribe-by-destination-1.0", "c1 login 1.0\nc1> SUBSCRIBE destination:/topic/{u} receipt:r0\nc1? receipt r0\nc1> UNSUBSCRIBE destination:/topic/{u} receipt:r1\nc1? frame")
S("headers", "unsubscribe-by-destination-1.2", "c1 login 1.2\nc1> SUBSCRIBE id:a destination:/topic/{u} receipt:r0\nc1? receipt r0\nc1> UNSUBSCRIBE destination:/topic/{u} receipt:r1\nc1? frame")
S("headers", "send-no-destination", "c1 login 1.2\nc1> SEND receipt:r1 | x\nc1? frame")
S("headers", "subscribe-no-destination", "c1 login 1.2\nc1> SUBSCRIBE id:s receipt:r1\nc1? frame")
S("headers", "send-large-body", SUB_TOPIC + "c1> SEND destination:/topic/{u} receipt:r2 | " + "y" * 100000 + "\nc1? receipt r2")

# --- ack modes -------------------------------------------------------------------------------------

def _ack_line(version: str, how: str) -> str:
    if how == "id":
        return "id:{ack1}" if version == "1.2" else "message-id:{mid1}" + (" subscription:s1" if version == "1.1" else "")
    if how == "mismatch":
        return "id:{ack1} subscription:other" if version == "1.2" else "message-id:{mid1} subscription:other"
    if how == "message-id":
        return "message-id:{mid1}"
    if how == "no-subscription":
        return "message-id:{mid1}"
    if how == "id-header":
        return "id:{mid1}" + (" subscription:s1" if version == "1.1" else "")
    if how == "none":
        return ""
    if how == "unknown":
        return "id:nope" if version == "1.2" else "message-id:nope" + (" subscription:s1" if version == "1.1" else "")
    raise ValueError(how)


for v in VERSIONS:
    for mode in ("auto", "client", "client-individual"):
        for dest in ("queue", "topic"):
            S("ack", f"{mode}-{dest}-{v}", f"""
c1 login {v}
c1> SUBSCRIBE id:s1 destination:/{dest}/{{u}} ack:{mode} receipt:r1
c1? receipt r1
c1> SEND destination:/{dest}/{{u}} receipt:r2 | one
c1? receipt r2
c1? msg
c1> ACK {_ack_line(v, "id")} receipt:r3
c1? frame
c1? quiet 0.3
""")
    for how in ("mismatch", "none", "unknown") + (("no-subscription",) if v == "1.1" else ()) + (("message-id",) if v == "1.2" else ("id-header",)):
        S("ack", f"form-{how}-{v}", f"""
c1 login {v}
c1> SUBSCRIBE id:s1 destination:/queue/{{u}} ack:client-individual receipt:r1
c1? receipt r1
c1> SEND destination:/queue/{{u}} receipt:r2 | one
c1? receipt r2
c1? msg
c1> ACK {_ack_line(v, how)} receipt:r3
c1? frame
c1? quiet 0.3
""")
    S("ack", f"unacked-redelivered-on-disconnect-{v}", f"""
c1 login {v}
c1> SUBSCRIBE id:s1 destination:/queue/{{u}} ack:client receipt:r1
c1? receipt r1
c1> SEND destination:/queue/{{u}} receipt:r2 | again
c1? receipt r2
c1? msg
c1> DISCONNECT receipt:d
c1? receipt d
c2 login {v}
c2> SUBSCRIBE id:s2 destination:/queue/{{u}} ack:auto receipt:r3
c2? msg
""")
S("ack", "client-cumulative", """
c1 login 1.2
c1> SUBSCRIBE id:s1 destination:/queue/{u} ack:client receipt:r1
c1? receipt r1
c1> SEND destination:/queue/{u} | one
c1> SEND destination:/queue/{u} | two
c1> SEND destination:/queue/{u} receipt:r2 | three
c1? receipt r2
c1? msg 3
c1> ACK id:{ack2} receipt:r3
c1? receipt r3
c1> UNSUBSCRIBE id:s1 receipt:r4
c1? receipt r4
c1> DISCONNECT receipt:d
c1? receipt d
c2 login 1.2
c2> SUBSCRIBE id:s2 destination:/queue/{u} receipt:r5
c2? msg
""")
S("ack", "client-individual-not-cumulative", """
c1 login 1.2
c1> SUBSCRIBE id:s1 destination:/queue/{u} ack:client-individual receipt:r1
c1? receipt r1
c1> SEND destination:/queue/{u} | one
c1> SEND destination:/queue/{u} receipt:r2 | two
c1? receipt r2
c1? msg 2
c1> ACK id:{ack2} receipt:r3
c1? receipt r3
c1> UNSUBSCRIBE id:s1 receipt:r4
c1? receipt r4
c1> DISCONNECT receipt:d
c1? receipt d
c2 login 1.2
c2> SUBSCRIBE id:s2 destination:/queue/{u} receipt:r5
c2? msg
""")
S("ack", "double-ack", """
c1 login 1.2
c1> SUBSCRIBE id:s1 destination:/queue/{u} ack:client-individual receipt:r1
c1? receipt r1
c1> SEND destination:/queue/{u} receipt:r2 | one
c1? receipt r2
c1? msg
c1> ACK id:{ack1} receipt:r3
c1? receipt r3
c1> ACK id:{ack1} receipt:r4
c1? frame
c1? quiet 0.3
""")

# --- NACK and requeue -----------------------------------------------------------------------------

for spelling in ("true", "false", "False", "FALSE", "True", "no", "0", "", "maybe"):
    label = spelling or "empty"
    S("nack", f"requeue-{label}", f"""
c1 login 1.2
c1> SUBSCRIBE id:s1 destination:/queue/{{u}} ack:client-individual receipt:r1
c1? receipt r1
c1> SEND destination:/queue/{{u}} receipt:r2 | one
c1? receipt r2
c1? msg
c1> NACK id:{{ack1}} requeue:{spelling} receipt:r3
c1? receipt r3
c1> SEND destination:/queue/{{u}} receipt:r4 | sentinel
c1? receipt r4
c1? msg
""")
for v in VERSIONS:
    S("nack", f"nack-{v}", f"""
c1 login {v}
c1> SUBSCRIBE id:s1 destination:/queue/{{u}} ack:client-individual receipt:r1
c1? receipt r1
c1> SEND destination:/queue/{{u}} receipt:r2 | one
c1? receipt r2
c1? msg
c1> NACK {_ack_line(v, "id")} receipt:r3
c1? frame
c1? msg
""")
S("nack", "client-cumulative", """
c1 login 1.2
c1> SUBSCRIBE id:s1 destination:/queue/{u} ack:client receipt:r1
c1? receipt r1
c1> SEND destination:/queue/{u} | one
c1> SEND destination:/queue/{u} receipt:r2 | two
c1? receipt r2
c1? msg 2
c1> NACK id:{ack2} requeue:false receipt:r3
c1? receipt r3
c1> SEND destination:/queue/{u} receipt:r4 | sentinel
c1? receipt r4
c1? msg
""")
S("nack", "unknown-id", "c1 login 1.2\nc1> NACK id:nope receipt:r1\nc1? frame")
S("nack", "topic-message", SUB_TOPIC.replace("receipt:r1", "ack:client receipt:r1") + "c1> SEND destination:/topic/{u} receipt:r2 | t\nc1? receipt r2\nc1? msg\nc1> NACK id:{ack1} receipt:r3\nc1? frame")

# --- prefetch -------------------------------------------------------------------------------------

for dest in ("queue", "topic"):
    for mode in ("client", "client-individual"):
        S("prefetch", f"{dest}-{mode}-1", f"""
c1 login 1.2
c1> SUBSCRIBE id:s1 destination:/{dest}/{{u}} ack:{mode} prefetch-count:1 receipt:r1
c1? receipt r1
c1> SEND destination:/{dest}/{{u}} | one
c1> SEND destination:/{dest}/{{u}} | two
c1> SEND destination:/{dest}/{{u}} receipt:r2 | three
c1? receipt r2
c1? msg
c1? quiet 0.3
c1> ACK id:{{ack1}} receipt:r3
c1? receipt r3
c1? msg
""")
    S("prefetch", f"{dest}-auto-ignored", f"""
c1 login 1.2
c1> SUBSCRIBE id:s1 destination:/{dest}/{{u}} prefetch-count:1 receipt:r1
c1? receipt r1
c1> SEND destination:/{dest}/{{u}} | one
c1> SEND destination:/{dest}/{{u}} receipt:r2 | two
c1? receipt r2
c1? msg 2
""")
S("prefetch", "queue-two-consumers", """
c1 login 1.2
c2 login 1.2
c1> SUBSCRIBE id:s1 destination:/queue/{u} ack:client-individual prefetch-count:1 receipt:r1
c1? receipt r1
c2> SUBSCRIBE id:s2 destination:/queue/{u} ack:client-individual prefetch-count:1 receipt:r1
c2? receipt r1
c1> SEND destination:/queue/{u} | one
c1> SEND destination:/queue/{u} receipt:r2 | two
c1? receipt r2
c1? msg
c2? msg
""")

# --- receipts ------------------------------------------------------------------------------------

S("receipt", "subscribe-before-queued-message", """
c1 login 1.2
c1> SEND destination:/queue/{u} receipt:r0 | waiting
c1? receipt r0
c1> SUBSCRIBE id:s1 destination:/queue/{u} receipt:r1
c1? msg
""")
S("receipt", "subscribe-before-queued-messages-many", """
c1 login 1.2
c1> SEND destination:/queue/{u} | a
c1> SEND destination:/queue/{u} | b
c1> SEND destination:/queue/{u} receipt:r0 | c
c1? receipt r0
c1> SUBSCRIBE id:s1 destination:/queue/{u} receipt:r1
c1? msg 3
""")
S("receipt", "send-topic-message-before-receipt", SUB_TOPIC + "c1> SEND destination:/topic/{u} receipt:r2 | first\nc1? frame\nc1? frame")
S("receipt", "send-no-subscribers", "c1 login 1.2\nc1> SEND destination:/topic/{u} receipt:r1 | void\nc1? frame")
S("receipt", "unsubscribe", SUB_TOPIC + "c1> UNSUBSCRIBE id:s1 receipt:r2\nc1? frame")
S("receipt", "disconnect", "c1 login 1.2\nc1> DISCONNECT receipt:d1\nc1? frame\nc1? closed 1")
S("receipt", "disconnect-no-receipt", "c1 login 1.2\nc1> DISCONNECT\nc1? closed 1")
S("receipt", "begin-commit-abort", "c1 login 1.2\nc1> BEGIN transaction:t1 receipt:b\nc1? frame\nc1> COMMIT transaction:t1 receipt:c\nc1? frame\nc1> BEGIN transaction:t2 receipt:b2\nc1? frame\nc1> ABORT transaction:t2 receipt:a\nc1? frame")
S("receipt", "many-in-order", "c1 login 1.2\n" + "\n".join(f"c1> SEND destination:/topic/{{u}} receipt:n{i} | {i}" for i in range(10)) + "\nc1? receipt n9")
S("receipt", "empty-receipt-header", "c1 login 1.2\nc1> SEND destination:/topic/{u} receipt: | x\nc1? frame")
S("receipt", "1.0-receipt", "c1 login 1.0\nc1> SEND destination:/topic/{u} receipt:x1 | x\nc1? frame")

# --- transactions -------------------------------------------------------------------------------

S("transaction", "commit", SUB_TOPIC + """
c1> BEGIN transaction:t1
c1> SEND destination:/topic/{u} transaction:t1 | in tx
c1> SEND destination:/topic/{u} receipt:r2 | outside
c1? receipt r2
c1> COMMIT transaction:t1 receipt:c
c1? receipt c
c1? quiet 0.2
""")
S("transaction", "send-receipt-at-commit", SUB_TOPIC + """
c1> BEGIN transaction:t1
c1> SEND destination:/topic/{u} transaction:t1 receipt:in-tx | in tx
c1> SEND destination:/topic/{u} receipt:r2 | outside
c1? receipt r2
c1> COMMIT transaction:t1 receipt:c
c1? receipt c
c1? quiet 0.2
""")
S("transaction", "abort", SUB_TOPIC + """
c1> BEGIN transaction:t1
c1> SEND destination:/topic/{u} transaction:t1 receipt:in-tx | dropped
c1> ABORT transaction:t1 receipt:a
c1? receipt a
c1> SEND destination:/topic/{u} receipt:r2 | after
c1? receipt r2
""")
S("transaction", "disconnect-aborts", """
c2 login 1.2
c2> SUBSCRIBE id:s1 destination:/queue/{u} receipt:r1
c2? receipt r1
c1 login 1.2
c1> BEGIN transaction:t1
c1> SEND destination:/queue/{u} transaction:t1 | dropped
c1> DISCONNECT receipt:d
c1? receipt d
c2> SEND destination:/queue/{u} receipt:r2 | sentinel
c2? receipt r2
c2? msg
""")
S("transaction", "ack-in-transaction", """
c1 login 1.2
c1> SUBSCRIBE id:s1 destination:/queue/{u} ack:client-individual receipt:r1
c1? receipt r1
c1> SEND destination:/queue/{u} receipt:r2 | one
c1? receipt r2
c1? msg
c1> BEGIN transaction:t1
c1> ACK id:{ack1} transaction:t1 receipt:ack
c1> COMMIT transaction:t1 receipt:c
c1? receipt c
c1? quiet 0.2
""")
S("transaction", "nack-in-aborted-transaction", """
c1 login 1.2
c1> SUBSCRIBE id:s1 destination:/queue/{u} ack:client-individual receipt:r1
c1? receipt r1
c1> SEND destination:/queue/{u} receipt:r2 | one
c1? receipt r2
c1? msg
c1> BEGIN transaction:t1
c1> NACK id:{ack1} transaction:t1
c1> ABORT transaction:t1 receipt:a
c1? receipt a
c1> ACK id:{ack1} receipt:r3
c1? frame
""")
S("transaction", "send-unknown-transaction", "c1 login 1.2\nc1> SEND destination:/topic/{u} transaction:nope receipt:r1 | x\nc1? frame")
S("transaction", "commit-unknown", "c1 login 1.2\nc1> COMMIT transaction:nope receipt:r1\nc1? frame")
S("transaction", "abort-unknown", "c1 login 1.2\nc1> ABORT transaction:nope receipt:r1\nc1? frame")
S("transaction", "begin-twice", "c1 login 1.2\nc1> BEGIN transaction:t1\nc1> BEGIN transaction:t1 receipt:r1\nc1? frame")
S("transaction", "begin-missing", "c1 login 1.2\nc1> BEGIN receipt:r1\nc1? frame")
S("transaction", "commit-missing", "c1 login 1.2\nc1> COMMIT receipt:r1\nc1? frame")
S("transaction", "commit-twice", "c1 login 1.2\nc1> BEGIN transaction:t1\nc1> COMMIT transaction:t1 receipt:r1\nc1? receipt r1\nc1> COMMIT transaction:t1 receipt:r2\nc1? frame")
S("transaction", "two-interleaved", SUB_TOPIC + """
c1> BEGIN transaction:a
c1> BEGIN transaction:b
c1> SEND destination:/topic/{u} transaction:a | a1
c1> SEND destination:/topic/{u} transaction:b | b1
c1> SEND destination:/topic/{u} transaction:a | a2
c1> COMMIT transaction:b receipt:cb
c1? receipt cb
c1> COMMIT transaction:a receipt:ca
c1? receipt ca
c1? quiet 0.2
""")
S("transaction", "queue-commit", """
c1 login 1.2
c1> BEGIN transaction:t1
c1> SEND destination:/queue/{u} transaction:t1 | queued in tx
c1> SUBSCRIBE id:s1 destination:/queue/{u} receipt:r1
c1? receipt r1
c1> COMMIT transaction:t1 receipt:c
c1? receipt c
c1? msg
""")

# --- durable and persistent subscriptions ----------------------------------------------------------

DURABLE = "durable/persistent topic subscriptions (a named RabbitMQ queue that outlives the connection)"
for header in ("durable:true", "persistent:true"):
    label = header.split(":")[0]
    S("durable", f"{label}-reconnect", f"""
c1 login 1.2
c1> SUBSCRIBE id:d1 destination:/topic/{{u}} {header} auto-delete:false receipt:r1
c1? receipt r1
c1> DISCONNECT receipt:d
c1? receipt d
c2 login 1.2
c2> SEND destination:/topic/{{u}} receipt:r2 | while away
c2? receipt r2
c3 login 1.2
c3> SUBSCRIBE id:d1 destination:/topic/{{u}} {header} auto-delete:false receipt:r3
c3? msg
c3> UNSUBSCRIBE id:d1 {header} receipt:r4
c3? receipt r4
""", rabbit_only=DURABLE)
    S("durable", f"{label}-unsubscribe-deletes", f"""
c1 login 1.2
c1> SUBSCRIBE id:d1 destination:/topic/{{u}} {header} auto-delete:false receipt:r1
c1? receipt r1
c1> UNSUBSCRIBE id:d1 {header} receipt:r2
c1? receipt r2
c2 login 1.2
c2> SEND destination:/topic/{{u}} receipt:r3 | nobody keeps this
c2? receipt r3
c3 login 1.2
c3> SUBSCRIBE id:d1 destination:/topic/{{u}} {header} auto-delete:false receipt:r4
c3? receipt r4
c3> SEND destination:/topic/{{u}} receipt:r5 | sentinel
c3? receipt r5
c3? msg
c3> UNSUBSCRIBE id:d1 {header} receipt:r6
c3? receipt r6
""", rabbit_only=DURABLE)
S("durable", "durable-without-id", "c1 login 1.2\nc1> SUBSCRIBE destination:/topic/{u} durable:true receipt:r1\nc1? frame")
S("durable", "persistent-without-id", "c1 login 1.1\nc1> SUBSCRIBE destination:/queue/{u} persistent:true receipt:r1\nc1? frame")
S("durable", "durable-without-id-no-destination", "c1 login 1.2\nc1> SUBSCRIBE durable:true receipt:r1\nc1? frame")
S("durable", "unsubscribe-durable-without-id", "c1 login 1.2\nc1> UNSUBSCRIBE destination:/topic/{u} durable:true receipt:r1\nc1? frame")
S("durable", "x-queue-name", """
c1 login 1.2
c1> SUBSCRIBE id:q1 destination:/topic/{u} x-queue-name:{u}-named receipt:r1
c1? receipt r1
c1> SEND destination:/topic/{u} receipt:r2 | named
c1? receipt r2
c1? msg
c1> SUBSCRIBE id:q2 destination:/amq/queue/{u}-named receipt:r3
c1? receipt r3
""", rabbit_only="x-queue-name names a RabbitMQ queue reachable as /amq/queue/")
S("durable", "persistent-send-queue", SUB_QUEUE + "c1> SEND destination:/queue/{u} persistent:true receipt:r2 | kept\nc1? receipt r2\nc1? msg")
S("durable", "queue-survives-reconnect", """
c1 login 1.2
c1> SEND destination:/queue/{u} receipt:r1 | stored
c1? receipt r1
c1> DISCONNECT receipt:d
c1? receipt d
c2 login 1.2
c2> SUBSCRIBE id:s1 destination:/queue/{u} receipt:r2
c2? msg
""")

# --- frame parsing --------------------------------------------------------------------------------

S("parsing", "nul-between-frames", SUB_TOPIC + "c1>> SEND{lf}destination:/topic/{u}{lf}{lf}one{nul}{nul}{nul}SEND{lf}destination:/topic/{u}{lf}receipt:r2{lf}{lf}two{nul}\nc1? receipt r2")
S("parsing", "eol-between-frames", SUB_TOPIC + "c1>> SEND{lf}destination:/topic/{u}{lf}{lf}one{nul}{lf}{lf}{cr}{lf}SEND{lf}destination:/topic/{u}{lf}receipt:r2{lf}{lf}two{nul}{lf}\nc1? receipt r2")
S("parsing", "nul-eol-mixed", SUB_TOPIC + "c1>> {lf}{nul}{lf}{nul}SEND{lf}destination:/topic/{u}{lf}receipt:r2{lf}{lf}x{nul}\nc1? receipt r2")
S("parsing", "content-length-embedded-nul", SUB_TOPIC + "c1>> SEND{lf}destination:/topic/{u}{lf}content-length:7{lf}receipt:r2{lf}{lf}a{nul}b{nul}c{nul}d{nul}\nc1? receipt r2")
S("parsing", "content-length-too-short", SUB_TOPIC + "c1>> SEND{lf}destination:/topic/{u}{lf}content-length:2{lf}receipt:r2{lf}{lf}abcd{nul}\nc1? frame\nc1? quiet 0.2")
S("parsing", "content-length-zero", SUB_TOPIC + "c1>> SEND{lf}destination:/topic/{u}{lf}content-length:0{lf}receipt:r2{lf}{lf}{nul}\nc1? receipt r2")
S("parsing", "content-length-invalid", SUB_TOPIC + "c1>> SEND{lf}destination:/topic/{u}{lf}content-length:abc{lf}receipt:r2{lf}{lf}x{nul}\nc1? frame\nc1? quiet 0.2")
S("parsing", "split-frame", SUB_TOPIC + "c1~ SEND destination:/topic/{u} receipt:r2 | split into pieces\nc1? receipt r2")
S("parsing", "two-frames-one-write", SUB_TOPIC + "c1>> SEND{lf}destination:/topic/{u}{lf}{lf}one{nul}SEND{lf}destination:/topic/{u}{lf}receipt:r2{lf}{lf}two{nul}\nc1? receipt r2")
S("parsing", "crlf-lines", SUB_TOPIC + "c1>> SEND{cr}{lf}destination:/topic/{u}{cr}{lf}receipt:r2{cr}{lf}{cr}{lf}crlf{nul}\nc1? receipt r2")
S("parsing", "unicode-body", SUB_TOPIC + "c1> SEND destination:/topic/{u} content-type:text/plain;charset=utf-8 receipt:r2 | żółć 日本 🎉\nc1? receipt r2", sockjs=True)
S("parsing", "header-no-colon", "c1 login 1.2\nc1>> SEND{lf}destination:/topic/{u}{lf}nocolon{lf}receipt:r1{lf}{lf}x{nul}\nc1? frame\nc1? quiet 0.2")
S("parsing", "header-spaces", SUB_TOPIC + "c1>> SEND{lf}destination:/topic/{u}{lf}x-space: padded {lf}receipt:r2{lf}{lf}x{nul}\nc1? receipt r2")
S("parsing", "repeated-destination", SUB_TOPIC + "c1> SEND destination:/topic/{u} destination:/topic/{u}-other receipt:r2 | first wins\nc1? receipt r2")
S("parsing", "unknown-command", "c1 login 1.2\nc1> FOO receipt:r1\nc1? frame")
S("parsing", "lowercase-command", "c1 login 1.2\nc1> send destination:/topic/{u} receipt:r1 | x\nc1? frame")
S("parsing", "server-command-from-client", "c1 login 1.2\nc1> MESSAGE destination:/topic/{u} receipt:r1 | x\nc1? frame")
S("parsing", "connected-from-client", "c1 login 1.2\nc1> CONNECTED version:1.2 receipt:r1\nc1? frame")
S("parsing", "heartbeat-eols-before-connect", "c1>> {lf}{lf}{cr}{lf}\nc1 login 1.2")
S("parsing", "nul-before-connect", "c1>> {nul}{lf}\nc1 login 1.2")
S("parsing", "body-on-subscribe", "c1 login 1.2\nc1> SUBSCRIBE id:s1 destination:/topic/{u} receipt:r1 | unexpected body\nc1? frame")
S("parsing", "1.0-colon-in-value", "c1 login 1.0\nc1> SUBSCRIBE destination:/topic/{u} receipt:r1\nc1? receipt r1\nc1> SEND destination:/topic/{u} x-time:12:30 receipt:r2 | x\nc1? receipt r2")
S("parsing", "1.2-colon-in-value", SUB_TOPIC + "c1> SEND destination:/topic/{u} x-time:12:30 receipt:r2 | x\nc1? receipt r2")
S("parsing", "invalid-utf8-body", SUB_TOPIC + "c1>> SEND{lf}destination:/topic/{u}{lf}receipt:r2{lf}{lf}\udcff\udcfe{nul}\nc1? receipt r2")
S("parsing", "split-connect", "c1~ CONNECT accept-version:1.2 host:{vhost} login:guest passcode:guest heart-beat:0,0\nc1? frame")

# --- destinations of our server only: /app and /user ---------------------------------------
#
# The differential server has no /app handlers (as `sockjs-server stomp`):
# every /app frame is a mistake in that frame, answered as RabbitMQ answers a
# destination it does not know, and the connection goes on.

_SEND = "c1> SEND destination:{d} receipt:r1 | x"
_SUBSCRIBE = "c1> SUBSCRIBE id:s1 destination:{d} receipt:r1"
#: The connection still works after the ERROR.
_AFTER = "c1> SUBSCRIBE id:s1 destination:/topic/{u} receipt:r2\nc1? receipt r2\nc1> SEND destination:/topic/{u} receipt:r3 | still here\nc1? receipt r3\nc1? msg"
for name, frame, ours, rabbit in (
    ("send-app-no-handler", _SEND, "/app/{u}", "/bogus/{u}"),
    ("subscribe-app-no-handler", _SUBSCRIBE, "/app/{u}", "/bogus/{u}"),
    ("send-app-bare", _SEND, "/app/", "/bogus/{u}"),
    ("subscribe-app-bare", _SUBSCRIBE, "/app/", "/bogus/{u}"),
    ("send-user-malformed", _SEND, "/user/{u}", "/bogus/{u}"),
    ("subscribe-user-malformed", _SUBSCRIBE, "/user/{u}", "/bogus/{u}"),
    ("subscribe-user-other", _SUBSCRIBE, "/user/{u}/queue/q", "/bogus/{u}"),  # only one's own /user/queue/x
    ("send-user-queue-slash", _SEND, "/user/{u}/queue/", "/queue/"),
    ("subscribe-user-queue-slash", _SUBSCRIBE, "/user/queue/", "/queue/"),
):
    script = f"c1 login 1.2\n{frame}\nc1? frame\n{_AFTER}"
    S("ours-only", name, script.replace("{d}", ours), reference=script.replace("{d}", rabbit), sockjs="no-handler" in name)
S("ours-only", "send-user-nobody", "c1 login 1.2\nc1> SEND destination:/user/{u}/queue/q receipt:r1 | to nobody\nc1? receipt r1\nc1? quiet 0.2",
  reference="c1 login 1.2\nc1> SEND destination:/topic/{u}-nobody receipt:r1 | to nobody\nc1? receipt r1\nc1? quiet 0.2")

# --- known differences ------------------------------------------------------------------------------

#: Why a scenario may differ from RabbitMQ: the row of the README table
#: "Differences from RabbitMQ" that explains it.
CONTROL = "control characters in destination names are refused"
FORGED = "headers the broker sets (subscription, ack, redelivered, user-id) are not copied from a SEND"
MALFORMED = "a malformed frame is answered with an ERROR that says why"
COLON_1_0 = "STOMP 1.0 header values are sent unescaped"
NO_SLASH = "destinations without a leading slash (MemoryBroker)"

#: (scenario, target) -> reason. ``python -m tests.differential`` fails on a
#: difference that is not listed here; a listed one that agrees is reported.
KNOWN: dict[tuple[str, str], str] = {}


def _known(reason: str, targets: tuple[str, ...], *names: str) -> None:
    for name in names:
        for target in targets:
            KNOWN[(name, target)] = reason


BOTH = ("memory", "relay")
_known(CONTROL, BOTH, *(f"destination/{op}-{kind}" for op in ("send", "subscribe") for kind in ("topic-tab", "queue-control")))
_known(FORGED, BOTH, *(f"headers/send-{h}-topic" for h in ("subscription-forged", "redelivered-forged", "ack-forged", "user-id-own")), "headers/send-user-id-other")
_known(MALFORMED, BOTH, "headers/send-1.2-bad-escape", "parsing/content-length-too-short", "parsing/content-length-invalid", "parsing/header-no-colon")
_known(COLON_1_0, BOTH, "parsing/1.0-colon-in-value")
_known(NO_SLASH, ("memory",), "destination/subscribe-no-leading-slash", "destination/send-no-leading-slash")
