"""Contact-center figures shared by the live dispatcher and the simulator (docs/metrics.md)."""

from __future__ import annotations

from acd.model import ServiceLevelFormula


def service_level(
    formula: ServiceLevelFormula,
    *,
    offered: int,
    answered: int,
    answered_within: int,
    short_abandoned: int,
) -> float | None:
    """The service level by `formula`; None when its denominator is zero.

    `answered_within`: answered within the threshold T; `short_abandoned`: abandoned within T.
    """
    if formula is ServiceLevelFormula.OFFERED:
        denominator = offered
    elif formula is ServiceLevelFormula.OFFERED_EXCLUDING_SHORT_ABANDONS:
        denominator = offered - short_abandoned
    else:
        denominator = answered
    if denominator <= 0:
        return None
    return answered_within / denominator
