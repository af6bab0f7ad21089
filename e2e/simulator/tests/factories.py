"""Hand-made pods for the model tests: no cluster, no API objects."""

from __future__ import annotations

from collections.abc import Mapping

from e2e.simulator.pods import ContainerView, PodView

T0 = 1_700_000_000.0
MiB = 1024.0 * 1024.0


def pod(
    name: str,
    *,
    namespace: str = "shop",
    workload: str = "checkout",
    revision: str = "aaa111",
    node: str = "node-1",
    knobs: Mapping[str, str] | None = None,
    ready: bool = True,
    running: bool = True,
    created: float = T0,
    memory_limit_mb: float | None = 512,
    cpu_limit: float | None = 1.0,
    restarts: int = 0,
    image: str = "shop/checkout:1.0.0",
) -> PodView:
    return PodView(
        namespace=namespace,
        name=name,
        uid=f"uid-{namespace}-{name}",
        workload=workload,
        deployment=workload,
        revision=revision,
        node=node,
        image=image,
        annotations={f"sim.stanch.dev/{k}": v for k, v in (knobs or {}).items()},
        containers=(
            ContainerView(
                name="app",
                memory_limit_bytes=memory_limit_mb * MiB if memory_limit_mb else None,
                cpu_limit_cores=cpu_limit,
                restart_count=restarts,
                running=running,
                started_at=created,
            ),
        ),
        ready=ready,
        running=running,
        created_at=created,
        started_at=created,
    )


def replicas(n: int, *, prefix: str = "checkout-aaa111", **kw: object) -> list[PodView]:
    return [pod(f"{prefix}-{i:05d}", created=T0 + i, **kw) for i in range(n)]  # type: ignore[arg-type]
