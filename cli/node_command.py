"""``kadspec node``: run one reference Kademlia DHT node on a real libp2p host.

The command is the reference node's own (:func:`kadspec.impl.node.node`, also runnable as
``python -m kadspec.impl.node``), registered under the ``kadspec`` group so an operator finds it
next to ``check`` and ``verify``. Importing this module is cheap: py-libp2p is imported only when
the node starts, and a broken py-libp2p install is one line naming what to install.

Exit status: 0 after a clean stop (Ctrl-C, SIGTERM, or end of input with ``--exit-on-eof``);
2 for bad input (a bad multiaddr, a bootstrap address without its ``/p2p/<peer id>``, a data
directory that holds no usable store), each one line on stderr; 1 when the listen address cannot
be bound. An unreachable bootstrap peer is one log line; the node keeps running and retries.
"""

from __future__ import annotations

from kadspec.impl.node import node

__all__ = ["node"]
