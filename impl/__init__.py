"""The reference node: a sans-IO lifecycle core, its wire format and its provider store.

Layers point one way (STYLE.md): ``wire`` (bytes <-> typed kad messages) and the core's pure
modules know nothing of sockets, clocks, randomness or threads; ``store`` is the one module that
touches a disk, and the core only sees it through the ``RecordStore`` protocol it is handed.
Drivers (the simulated network in ``sim``, later the py-libp2p host) feed events in and carry
effects out.

Modules, one per concept: ``keyspace`` (IDs and the XOR metric), ``config``, ``events`` (what
happens to a node), ``effects`` (what it asks for and reports), ``routing`` (k-buckets and
admission), ``lookup``, ``provide``, ``addresses`` (candidates, confirmation, mode),
``records`` and ``store`` (provider records), ``core`` (wires them to events), ``sim``.
"""

from kadspec.impl.config import BootstrapPeer, CoreConfig, Mode, ModeSetting
from kadspec.impl.core import Core
from kadspec.impl.records import MemoryStore, ProviderRecord, RecordStore
from kadspec.impl.store import SqliteProviderStore

__all__ = [
    "BootstrapPeer",
    "Core",
    "CoreConfig",
    "MemoryStore",
    "Mode",
    "ModeSetting",
    "ProviderRecord",
    "RecordStore",
    "SqliteProviderStore",
]
