"""kadspec: a formally-checked specification of the libp2p Kademlia DHT node lifecycle.

Layers point one way: ``kadspec.spec`` (requirement IDs) <- ``kadspec.models`` (the pure,
executable model and its checking engines) <- the command line in ``kadspec.cli``.
"""

__version__ = "0.1.0"
