"""The engines that check the model: exhaustive exploration, Hypothesis hunts and z3.

``kadspec.models`` is the specification in code; this package holds the machinery run over it.
It imports the model and never the reverse, so the model stays the single source of the
semantics: the breadth-first explorer (``explorer``, with the memoized successor engine in
``successors`` and the state-space ``reductions``), the Hypothesis machine (``stateful``), the
trace renderer (``trace``) and the z3 layer (``symbolic``).
"""
