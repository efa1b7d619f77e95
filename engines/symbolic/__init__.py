"""The symbolic layer: z3 proofs about the model.

Layers, each depending only on those above it:

- ``terms``: constant-folding builders over z3 terms and Python values;
- ``metric``: the XOR-metric lemmas over 256-bit keys;
- ``encoding``: the lifecycle model for a fixed number of nodes, as state variables, guards and
  effects (twins of the executable model's functions), and ``project`` from a concrete World;
- ``invariants``: the safety requirements as formulas, the auxiliary invariants and step
  properties, and ``NOT_ENCODED``;
- ``obligations``: initiation and consecution in the style of mypyvy, with counterexamples to
  induction replayed through the executable model (``concretize``, ``render``);
- ``bmc``: bounded model checking from a scenario's world, traces replayed concretely;
- ``fidelity``: the checker that keeps the encoding and the executable model in agreement;
- ``lifecycle``: ``prove_lifecycle`` and its ``ProofReport``.
"""

from kadspec.engines.symbolic.lifecycle import (
    Obligation,
    ProofReport,
    policy_name,
    prove_lifecycle,
)

__all__ = ["Obligation", "ProofReport", "policy_name", "prove_lifecycle"]
