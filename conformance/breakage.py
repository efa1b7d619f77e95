"""Deliberately broken behaviours of the reference node, for showing that conformance catches
real mistakes (test-only: ``--break NAME`` of the reference adapter).

Each :class:`Breakage` wraps one reference :class:`~kadspec.impl.core.Core` (``wrap(core)``)
without editing ``impl/``: the wrapper intercepts the events fed to the core, the effects it
returns, or its provider store, and delegates everything else, so a driver (the reference
adapter's ``HostDriver``, or the in-process simulation) runs it as it runs a core. The adapter
reports what the *network* did from the raw events (before the wrapper) and what the *node* did
from the wrapped core's effects and state, so the judge sees the broken node as a peer would.

Each breakage names the requirement it must fail and the scenario that shows it:

- ``admit-client``: every identify is read as advertising kad, so clients enter the table
  (RT-02: admitted without positive evidence; RT-01 while it stays);
- ``serve-expired``: the store ignores expiry, so expired records are served (PROV-04);
- ``success-without-store``: ADD_PROVIDER is never sent but reported delivered, so a provide
  reports success with no store behind it (PROV-02);
- ``drop-provide-before-ready``: a provide issued before the node is ready is dropped, so the
  caller never gets an outcome (BOOT-05);
- ``find-node-returns-requester``: every FIND_NODE reply also names the requester (FIND-01);
- ``withhold-records``: GET_PROVIDERS replies leave out the stored records (PROV-07);
- ``forget-listen-addrs``: identify's listen addresses are dropped, so a listener-side peer is
  never routed to (ADDR-06, the UnroutablePeer bug).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from kadspec.impl import effects as fx
from kadspec.impl import events as ev
from kadspec.impl.effects import KAD_PROTOCOL
from kadspec.impl.records import ProviderRecord
from kadspec.impl.wire import KadMessage, MessageType, PeerInfo


class WrappedCore:
    """A core seen through a wrapper: ``handle`` may rewrite events and effects; every other
    attribute is the wrapped core's (table, mode, store, addresses, connections(), ...)."""

    def __init__(self, core: Any) -> None:
        self.__dict__["_core"] = core

    def __getattr__(self, name: str) -> Any:
        return getattr(self._core, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._core, name, value)

    def handle(self, event: ev.Event) -> list[fx.Effect]:
        changed = self.before(event)
        if changed is None:
            return []
        return self.after(changed, self._core.handle(changed))

    def before(self, event: ev.Event) -> ev.Event | None:
        """The event the core is given (None: it never sees it)."""
        return event

    def after(self, event: ev.Event, effects: list[fx.Effect]) -> list[fx.Effect]:
        """The effects the driver carries out."""
        return effects


class _AdmitClient(WrappedCore):
    def before(self, event: ev.Event) -> ev.Event | None:
        if isinstance(event, ev.IdentifyReceived) and KAD_PROTOCOL not in event.protocols:
            return attrs.evolve(event, protocols=event.protocols | {KAD_PROTOCOL})
        return event


class IgnoresExpiry:
    """A provider store that keeps and serves every record past its expiry (a shadow of the
    real store, so it works over any store)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._records: dict[tuple[bytes, bytes], ProviderRecord] = {}

    def add(self, record: ProviderRecord) -> None:
        self.inner.add(record)
        self._records[record.key, record.provider] = record

    def get(self, key: bytes, now: int) -> tuple[ProviderRecord, ...]:
        found = [r for (k, _), r in self._records.items() if k == key]
        # the bug: a stale expiry is read as "still live"
        return tuple(
            sorted(
                (attrs.evolve(r, expires_at=max(r.expires_at, now + 1)) for r in found),
                key=lambda r: r.provider,
            )
        )

    def remove(self, key: bytes, provider: bytes) -> None:
        self.inner.remove(key, provider)
        self._records.pop((key, provider), None)

    def expire(self, now: int) -> int:
        return 0  # nothing is ever collected

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _ServeExpired(WrappedCore):
    def __init__(self, core: Any) -> None:
        super().__init__(core)
        if not isinstance(core.store, IgnoresExpiry):
            core.store = IgnoresExpiry(core.store)


class _SuccessWithoutStore(WrappedCore):
    def after(self, event: ev.Event, effects: list[fx.Effect]) -> list[fx.Effect]:
        out: list[fx.Effect] = []
        queue = list(effects)
        while queue:
            effect = queue.pop(0)
            if (
                isinstance(effect, fx.SendRequest)
                and effect.message.type is MessageType.ADD_PROVIDER
            ):
                # the bug: count the ADD_PROVIDER as delivered without sending it
                queue.extend(self._core.handle(ev.RequestDelivered(event.now, effect.request)))
                continue
            out.append(effect)
        return out


class _DropProvideBeforeReady(WrappedCore):
    def before(self, event: ev.Event) -> ev.Event | None:
        if isinstance(event, ev.Provide) and not self._core.is_ready:
            return None  # the bug: the call is lost, no outcome ever comes
        return event


class _FindNodeReturnsRequester(WrappedCore):
    def __init__(self, core: Any) -> None:
        super().__init__(core)
        self.__dict__["_askers"] = {}

    def before(self, event: ev.Event) -> ev.Event | None:
        if isinstance(event, ev.RequestReceived) and event.message.type is MessageType.FIND_NODE:
            self._askers[event.stream] = event.peer
        return event

    def after(self, event: ev.Event, effects: list[fx.Effect]) -> list[fx.Effect]:
        out: list[fx.Effect] = []
        for effect in effects:
            if isinstance(effect, fx.SendResponse):
                asker = self._askers.pop(effect.stream, None)
                if asker is not None and effect.message.type is MessageType.FIND_NODE:
                    entry = self._core.table.get(asker)
                    requester = PeerInfo(id=asker, addrs=entry.addrs if entry is not None else ())
                    message: KadMessage = attrs.evolve(
                        effect.message, closer_peers=(*effect.message.closer_peers, requester)
                    )
                    effect = attrs.evolve(effect, message=message)
            out.append(effect)
        return out


class _WithholdRecords(WrappedCore):
    def after(self, event: ev.Event, effects: list[fx.Effect]) -> list[fx.Effect]:
        out: list[fx.Effect] = []
        for effect in effects:
            if (
                isinstance(effect, fx.SendResponse)
                and effect.message.type is MessageType.GET_PROVIDERS
                and effect.message.provider_peers
            ):
                # the bug: records are stored but never served
                effect = attrs.evolve(
                    effect, message=attrs.evolve(effect.message, provider_peers=())
                )
            out.append(effect)
        return out


class _ForgetListenAddrs(WrappedCore):
    def before(self, event: ev.Event) -> ev.Event | None:
        if isinstance(event, ev.IdentifyReceived) and event.listen_addrs:
            return attrs.evolve(event, listen_addrs=())  # the bug: identify's addresses dropped
        return event


@attrs.frozen
class Breakage:
    """One broken behaviour: what it breaks, the requirement it must fail, the scenario that
    shows it, and how it wraps a core."""

    name: str
    text: str
    requirement: str
    scenario: str
    wrapper: Callable[[Any], WrappedCore]

    def wrap(self, core: Any) -> WrappedCore:
        return self.wrapper(core)


BREAKAGES: dict[str, Breakage] = {
    b.name: b
    for b in (
        Breakage(
            "admit-client",
            "reads every identify as advertising kad, so client-mode peers enter the table",
            "RT-02",
            "client-requests",
            _AdmitClient,
        ),
        Breakage(
            "serve-expired",
            "its store ignores expiry: expired provider records are kept and served",
            "PROV-04",
            "record-expiry",
            _ServeExpired,
        ),
        Breakage(
            "success-without-store",
            "never sends ADD_PROVIDER but counts each as delivered, reporting success",
            "PROV-02",
            "provide-at-startup",
            _SuccessWithoutStore,
        ),
        Breakage(
            "drop-provide-before-ready",
            "drops a provide issued before the node is ready: the caller never hears back",
            "BOOT-05",
            "provide-at-startup",
            _DropProvideBeforeReady,
        ),
        Breakage(
            "find-node-returns-requester",
            "adds the requester to every FIND_NODE reply",
            "FIND-01",
            "several-keys",
            _FindNodeReturnsRequester,
        ),
        Breakage(
            "withhold-records",
            "stores provider records but answers GET_PROVIDERS without them",
            "PROV-07",
            "several-keys",
            _WithholdRecords,
        ),
        Breakage(
            "forget-listen-addrs",
            "drops the listen addresses identify brings, so a node that was dialed holds only "
            "the dialer's ephemeral address and never routes to it (UnroutablePeer)",
            "ADDR-06",
            "listener-side-join",
            _ForgetListenAddrs,
        ),
    )
}

__all__ = ["BREAKAGES", "Breakage", "IgnoresExpiry", "WrappedCore"]
