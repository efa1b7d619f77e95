"""The reference node: a sans-IO lifecycle core, its wire format and its provider store.

Layers point one way (STYLE.md): ``wire`` (bytes <-> typed kad messages) and the core's pure
modules know nothing of sockets, clocks, randomness or threads; ``store`` is the one module that
touches a disk, and the core only sees it through the ``RecordStore`` protocol it is handed.
Drivers (the simulated network, later the py-libp2p host) feed events in and carry effects out.
"""
