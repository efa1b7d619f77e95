"""Any sequence of events, however wrong, leaves the core standing and its promises kept."""

from __future__ import annotations

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from kadspec.impl import effects as fx
from kadspec.impl import events as ev
from kadspec.impl.config import BootstrapPeer, CoreConfig, ModeSetting
from kadspec.impl.core import Core
from kadspec.impl.effects import KAD_PROTOCOL
from kadspec.impl.events import Direction, Timer, TimerKind
from kadspec.impl.keyspace import Sha256Keyspace
from kadspec.impl.records import MemoryStore
from kadspec.impl.wire import KadMessage, MessageType, PeerInfo

peers = st.integers(0, 6).map(lambda n: bytes([0x00, 1, n]))
addrs = st.lists(st.sampled_from([b"/a", b"/b", b""]), max_size=2).map(tuple)
small = st.integers(0, 12)
keys = st.sampled_from([b"k1", b"k2", b"", bytes([0x00, 1, 0])])
infos = st.builds(PeerInfo, id=peers, addrs=addrs)
messages = st.builds(
    KadMessage,
    type=st.sampled_from(MessageType),
    key=keys,
    closer_peers=st.lists(infos, max_size=3).map(tuple),
    provider_peers=st.lists(infos, max_size=2).map(tuple),
)
timers = st.builds(Timer, kind=st.sampled_from(TimerKind), subject=small | keys)
protocols = st.sampled_from([frozenset(), frozenset({KAD_PROTOCOL})])

events = st.one_of(
    st.builds(ev.ConnectionOpened, small, small, peers, st.sampled_from(Direction), st.just(b"/r")),
    st.builds(ev.ConnectionClosed, small, small, peers),
    st.builds(ev.DialFailed, small, peers, st.just("refused")),
    st.builds(ev.IdentifyReceived, small, small, peers, addrs, protocols, st.none() | keys),
    st.builds(ev.RequestReceived, small, peers, small, small, messages),
    st.builds(ev.ResponseReceived, small, small, messages),
    st.builds(ev.RequestDelivered, small, small),
    st.builds(ev.RequestFailed, small, small, st.just("reset")),
    st.builds(ev.DialBackResult, small, keys, st.booleans()),
    st.builds(ev.TimerFired, small, timers),
    st.builds(ev.Provide, small, small, keys),
    st.builds(ev.FindProviders, small, small, keys),
    st.builds(ev.StopProviding, small, keys),
    st.builds(ev.SetMode, small, st.sampled_from(ModeSetting)),
)


@given(st.lists(events, max_size=40), st.sampled_from(ModeSetting))
@settings(max_examples=200, deadline=None)
def test_no_event_sequence_crashes_the_core_or_breaks_its_promises(
    sequence: list[ev.Event], mode: ModeSetting
) -> None:
    config = CoreConfig(
        peer_id=bytes([0x00, 1, 0]),
        announce_addrs=(b"/me",),
        bootstrap=(BootstrapPeer(bytes([0x00, 1, 1]), (b"/a",)),),
        mode=mode,
        keyspace=Sha256Keyspace(8),
        k=2,
        alpha=2,
        # short enough that the fired timers are due and really run
        request_deadline=20,
        refresh_interval=50,
        retry_base=5,
        retry_cap=40,
        republish_interval=100,
        record_ttl=200,
        gc_interval=60,
    )
    core = Core(config, MemoryStore())
    now = 0
    core.handle(ev.Start(now))
    for event in sequence:
        now += event.now  # time never runs backwards
        out = core.handle(attrs.evolve(event, now=now))
        for effect in out:
            if isinstance(effect, fx.ReportOutcome) and isinstance(
                effect.outcome, fx.ProvideOutcome
            ):
                outcome = effect.outcome
                assert outcome.delivered >= 1 if outcome.ok else outcome.reason  # PROV-02
            if isinstance(effect, fx.SendResponse):
                assert core.mode.value == "server"  # ADDR-01
        assert core.peer_id not in core.table  # RT-07
        assert all(size <= 2 for size in core.table.bucket_sizes().values())  # RT-05
        assert all(e.addrs for e in core.table)  # RT-04
        for lookup in core.lookups():
            assert len(lookup.inflight) <= 2  # FIND-03
        assert Timer(TimerKind.REFRESH) in core.timers()  # BOOT-03
