"""The partitioned explorer on Ray: one actor per partition, frontier exchange per level.

``kadspec check --ray ADDRESS`` (a running cluster) or ``--ray local`` (a Ray started here for
the run and stopped after it). Each actor holds one :class:`~kadspec.engines.parallel.Worker`;
the coordinator in this process runs the same level-synchronous rounds as ``--workers``
(:func:`~kadspec.engines.parallel.coordinate`), so the results are the serial explorer's: the
state count, the violated requirements and the counterexample lengths.

Ownership of a state is a hash of its node states, so every actor must hash alike: the actors
get ``PYTHONHASHSEED`` through the job's runtime environment (and the coordinator checks their
answers to a probe before it starts). Every node of a cluster needs kadspec installed (the same
version), as Ray imports the worker's code there.

Ray is an optional extra (``pip install 'kadspec[ray]'``); nothing else imports this module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, cast

import attrs

from kadspec.engines.explorer import Exploration
from kadspec.engines.parallel import (
    RemoteTransport,
    SearchOptions,
    Worker,
    coordinate,
    worker_arguments,
)
from kadspec.models.policy import Policy
from kadspec.models.state import World

#: the hash seed every actor runs with (ownership of states must agree between them)
HASH_SEED = "0"


class RayTransport(RemoteTransport):
    """Workers in Ray actors; each round is one remote call per actor, awaited together."""

    remote = True

    def __init__(self, actors: list[Any]) -> None:
        import ray

        self._ray = ray
        self.actors = actors
        self.count = len(actors)

    def _all(self, method: str, args: list[tuple[Any, ...]] | None = None) -> list[Any]:
        calls = [
            actor.call.remote(method, () if args is None else args[n])
            for n, actor in enumerate(self.actors)
        ]
        answers: list[Any] = self._ray.get(calls)
        return answers

    def path(self, worker: int, index: int) -> list[tuple[int, int, int]]:
        answer: list[tuple[int, int, int]] = self._ray.get(
            self.actors[worker].call.remote("path", (index,))
        )
        return answer

    def close(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor)


class _Host:
    """The actor's body: a Worker and a dispatcher (Ray wraps this class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        import gc

        gc.disable()  # as in explorer.explore: the search makes no cycles worth collecting
        self.worker = Worker(*args, **kwargs)

    def call(self, method: str, args: tuple[Any, ...]) -> Any:
        return getattr(self.worker, method)(*args)


def explore_ray(
    initial: World,
    policy: Policy,
    options: SearchOptions | None = None,
    *,
    address: str = "local",
    workers: int | None = None,
    **search: Any,
) -> Exploration:
    """:func:`~kadspec.engines.explorer.explore` partitioned over Ray actors; ``options`` (or
    the keywords of :class:`~kadspec.engines.parallel.SearchOptions`, which override it) bound
    and steer the search, as for ``explore_parallel``.

    ``address`` is a cluster's address (``ray://host:10001`` or ``host:6379``, as
    ``ray.init`` takes it) or "local" for a Ray started in this process for the run (with
    ``workers`` CPUs) and shut down after it. ``workers`` defaults to the cluster's CPUs.
    A Ray this process was already connected to is used as it is and left running.
    """
    chosen = attrs.evolve(options or SearchOptions(), **search)
    import ray

    started_here = False
    if not ray.is_initialized():
        runtime_env = {"env_vars": {"PYTHONHASHSEED": HASH_SEED}}
        if address == "local":
            ray.init(
                num_cpus=workers,
                include_dashboard=False,
                runtime_env=runtime_env,
                logging_level=logging.WARNING,
                log_to_driver=False,
            )
        else:
            ray.init(address=address, runtime_env=runtime_env, logging_level=logging.WARNING)
        started_here = True
    try:
        resources = cast(Callable[[], dict[str, float]], ray.cluster_resources)()
        count = workers or max(1, int(resources.get("CPU", 1)))
        host = ray.remote(num_cpus=1)(_Host)
        actors = [
            host.remote(*args, **keywords)
            for args, keywords in worker_arguments(initial, policy, count, chosen)
        ]
        transport = RayTransport(actors)
        try:
            return coordinate(transport, initial, policy, chosen)
        finally:
            transport.close()
    finally:
        if started_here:
            ray.shutdown()


__all__ = ["HASH_SEED", "RayTransport", "explore_ray"]
