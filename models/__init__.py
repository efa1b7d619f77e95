"""The executable lifecycle model: the spec in code.

.. rubric:: Deliberate abstractions

The model leaves out some of what a real node does, on purpose: each item keeps the state space
small enough to explore exhaustively, and none hides a rule of spec/requirements.toml from the
checks. The reference core (``kadspec.impl.core``) is checked against the model in lockstep,
so where a real host behaves otherwise, the lockstep driver (``kadspec.impl.refinement``) maps
the core's way onto the model's and says so. What each abstraction hides:

(a) Requests and replies outlive their connection. A message in flight when its connection
    closes is dropped if it arrives while the pair is disconnected, but delivered if the pair
    reconnected meanwhile, and a reply is matched to its lookup by (peer, target, kind), not by
    stream (``network.disconnect``, ``actions.deliver_reads_sender``, ``lookup._matching``).
    In libp2p a stream dies with its connection, so a real requester sees the request fail at
    the close and never gets that late answer. Hidden: a lookup or ADD_PROVIDER the model lets
    succeed over a second connection fails (sooner) in a real node; failures caused by a
    disconnect are only seen as deadlines.
(b) ADD_PROVIDER is sent without a dial (``provide.announce``). The peers GetClosestPeers
    returned answered over a live connection moments before; if that connection closed
    meanwhile, the model's ADD_PROVIDER is dropped on arrival (unless the pair reconnected) and
    counts as not delivered at its deadline, where a real host dials again. Hidden: a re-dial
    (and its failure, RT-06) at announce time; the model's outcome is the more pessimistic one,
    so PROV-02 is not weakened.
(c) The admission probe is instant (``routing._probe_answers``): a look at the candidate's
    table, answered even by a node in client mode, instead of a FIND_NODE round trip. The core
    sends the real FIND_NODE and the lockstep driver answers it within the step. Hidden: a probe
    that times out, is reset by a client, or races with the candidate's table changing.
(d) A find reports only what the network answered (``lookup.on_reply``; the finder's own
    store is not asked). go merges local records into FindProviders. Hidden: nothing a check
    needs, since a node that provides a key knows it provides it; a node that holds another's
    record finds it only through a peer.
(e) Identify is per pair, not per connection (``network.identify``, ``PeerView.proto``): a
    node's view keeps what the last identify said across a disconnect, so an identify of an
    older connection stands for the current one. Real hosts keep protocols in a peer store
    across connections too (go, js), so this is close; hidden: a second concurrent connection's
    own identify exchange, and low-table recovery may re-admit a reconnected peer on its earlier
    identify before the new connection's arrives (a connection it opened is a sign of life).
(f) ``provide.user_provide`` while an attempt runs resets the phase to QUEUED but keeps its
    lookup and pending ADD_PROVIDERs. Unreachable in the shipped scenarios (each provide is in
    the environment's budget once); a configuration that provides a key twice would explore it.
(g) No refresh lookups beyond the self-lookup. The libp2p kad-dht spec ("Bootstrap process")
    also looks up a random ID on every run, and go refreshes one random ID per bucket up to
    common-prefix length 15 (rtrefresh doRefresh, kbucket maxCplForRefresh); the model, and so
    the core, run only the self-lookup at bootstrap and every refresh interval. Hidden: far
    buckets fill only by chance (a 1,000-node simulation found half the nodes with an empty
    bucket 0 twenty seconds in, and one key provided to the wrong 20 nodes). Planned shape: a
    REFRESH lookup per bucket cpl 0..min(deepest non-empty, 15), skipping full buckets, with the
    deterministic target own ID ^ (1 << (bits - 1 - cpl)); it waits for the symbolic mirror,
    whose targets are node IDs and keys only.
"""
