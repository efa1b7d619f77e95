"""Conformance: checking live libp2p nodes against the model's requirements.

A runner drives an *adapter* process over JSON lines (the adapter protocol); the adapter starts
and steers nodes of one implementation and reports what they do. The runner judges every
snapshot and event with the model's own observable checks, replays the events through the model
(trace validation), and writes the results per requirement. The reference node's adapter is the
first one; ``kadspec conform --adapter 'COMMAND'`` takes any other.
"""
