"""Our own addresses and mode: candidates, confirmation by dial-back, automatic mode.

An address a peer says it observed us at is only a candidate until a dial-back to it succeeds
(ADDR-03); in automatic mode we are a server exactly while some external address is confirmed
(ADDR-04). Pinned modes stay pinned.
"""

from __future__ import annotations

from kadspec.impl.config import Mode, ModeSetting
from kadspec.impl.requirements import implements


class Addresses:
    """The addresses a node knows for itself, and the mode they imply."""

    def __init__(self, announce: tuple[bytes, ...], setting: ModeSetting) -> None:
        self.announce = announce
        self.setting = setting
        self.candidates: set[bytes] = set()
        self.confirmed: set[bytes] = set()
        self.probed: set[bytes] = set()
        #: a dial-back result came in since the start (the model's ``dial_back_tried``)
        self.dial_back_tried = False

    @implements("ADDR-03")
    def observe(self, addr: bytes) -> bool:
        """A peer reports seeing us at ``addr``: a candidate. True when it needs a dial-back.

        Even an address the operator announces is only a candidate here: the automatic mode
        follows a *confirmed* address (ADDR-03, ADDR-04), and a listen address the operator
        believes public may sit behind a NAT all the same.
        """
        if addr in self.confirmed:
            return False
        self.candidates.add(addr)
        if addr in self.probed:
            return False
        self.probed.add(addr)
        return True

    def dial_back(self, addr: bytes, reachable: bool) -> None:
        self.dial_back_tried = True
        if reachable:
            self.candidates.discard(addr)
            self.confirmed.add(addr)
        else:
            self.confirmed.discard(addr)

    @implements("ADDR-04")
    def mode(self) -> Mode:
        if self.setting is ModeSetting.AUTO:
            return Mode.SERVER if self.confirmed else Mode.CLIENT
        return Mode.SERVER if self.setting is ModeSetting.SERVER else Mode.CLIENT

    @implements("ADDR-07")
    def announceable(self) -> tuple[bytes, ...]:
        """What ADD_PROVIDER and FIND_NODE replies carry for us: never a mere candidate."""
        return tuple(dict.fromkeys((*self.announce, *sorted(self.confirmed))))
