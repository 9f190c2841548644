"""Multi-Region strong consistency (MRSC) as the configuration declares it.

A table created with MultiRegionConsistency STRONG has exactly three members: three
replicas, or two replicas and a witness. Every successful write is already in another
member, so a failover loses nothing (RPO 0). The configured regions are the table's
replicas; a witness holds no replica and serves no reads or writes, so it is no
configured region and never a failover target.

`responder.consistency` and `responder.witness` apply to every table;
`responder.tables.NAME` (the same two keys) replaces them for one table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

MEMBERS = 3
STRONG = "strong"
EVENTUAL = "eventual"
RPO_ZERO = "RPO 0 (strong consistency)"


class Spec(Protocol):
    """One table's settings (ddb_failover.config.TableConsistency)."""

    @property
    def consistency(self) -> str: ...

    @property
    def witness(self) -> str | None: ...


class Configured(Protocol):
    """What these functions read of ddb_failover.config.Config."""

    @property
    def tables(self) -> tuple[str, ...]: ...

    def consistency_of(self, table: str) -> Spec: ...


def check(
    regions: Sequence[str], tables: Sequence[str], default: Spec, per_table: Mapping[str, Spec]
) -> None:
    """ValueError naming the key when the consistency settings do not fit the regions."""
    unknown = sorted(set(per_table) - set(tables))
    if unknown:
        raise ValueError(
            f"responder.tables.{unknown[0]}: not a table of tables ({', '.join(tables)})"
        )
    _check_members("responder", default.consistency, default.witness, regions)
    for table, spec in per_table.items():
        _check_members(f"responder.tables.{table}", spec.consistency, spec.witness, regions)


def _check_members(where: str, mode: str, witness: str | None, regions: Sequence[str]) -> None:
    if witness is not None and mode != STRONG:
        raise ValueError(
            f"{where}.witness: only a strong table has a witness (set {where}.consistency: strong)"
        )
    if mode != STRONG:
        return
    if witness in regions:
        raise ValueError(
            f"{where}.witness: {witness} is a configured region; a witness holds no replica, "
            "so it must be a region outside regions"
        )
    if len(regions) + (witness is not None) != MEMBERS:
        third = f"the witness {witness}" if witness else "no witness"
        have = f"{len(regions)} regions and {third}"
        raise ValueError(
            f"{where}.consistency: strong needs exactly three members, two regions and a "
            f"witness or three regions; got {have}"
        )


def strong_tables(config: Configured) -> tuple[str, ...]:
    """The tables whose consistency is strong, in configured order."""
    return tuple(t for t in config.tables if config.consistency_of(t).consistency == STRONG)


def witnesses(config: Configured) -> dict[str, tuple[str, ...]]:
    """Each witness region and the tables it is the witness of."""
    found: dict[str, list[str]] = {}
    for table in config.tables:
        witness = config.consistency_of(table).witness
        if witness is not None:
            found.setdefault(witness, []).append(table)
    return {region: tuple(tables) for region, tables in found.items()}


def not_a_target(region: str, tables: Sequence[str]) -> str:
    """Why the witness region is never a failover target."""
    return (
        f"{region} is the witness of {', '.join(tables)}: a witness holds no replica and "
        "serves no reads or writes, so it is never a failover target"
    )


def describe(config: Configured) -> dict[str, object]:
    """The plan's `consistency` block: each table's mode, the witnesses, and the RPO."""
    strong = strong_tables(config)
    return {
        "tables": {t: config.consistency_of(t).consistency for t in config.tables},
        "witnesses": {
            region: {"tables": list(tables), "target": False, "why": not_a_target(region, tables)}
            for region, tables in witnesses(config).items()
        },
        "rpo": RPO_ZERO if len(strong) == len(config.tables) else None,
    }
