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
(g) Refresh looks up the empty buckets only, at a fixed ID. After the self-lookup of each
    bootstrap and refresh run, one lookup at a time (as go's doRefresh), the node looks up
    an ID in each bucket that holds no peer, from common prefix length 0 up to its deepest
    non-empty bucket (and at most 15, go's maxCplForRefresh) (``lifecycle.refresh_buckets``).
    The ID is the node's own with that bucket's bit flipped (``lookup.refresh_target``), where
    the spec draws a random ID in the bucket. go, js and py-libp2p also look up the buckets
    that hold a peer but are not full; looking those up made a three-node scenario's state
    space grow from 35,522 to over 2 million states. Hidden: a non-empty bucket with fewer
    than k peers is not replenished by refresh (the IPFS spec's MUST asks for every bucket
    that is not full), so the fresh contacts such a lookup would bring are missing, and a
    random target's spread inside its bucket (the lookup converges on the peers nearest one
    fixed point of it). The holes a 1,000-node simulation found were empty buckets, which
    this covers.
"""
