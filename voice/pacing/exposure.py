"""The exposure of a campaign on the prediction grid: the distribution of (agents free) - (humans answered)
at each future instant, exact for small teams and a refined normal for large ones. Pure code.
"""

from __future__ import annotations

import math
from operator import mul

from voice.pacing.model import INV_SQRT_2PI, Row, phi_cdf


class Exposure:
    """The grid distribution of E(t) = base + (busy agents free by t + hold) - (humans answered by t).

    base = ready agents - humans on hold; each supply / demand `Row` is one agent / line, independent of
    the others. p_short()[k] = P(E(t_k) <= 0): a human arriving in cell k finds nobody.

    While at most EXACT_MAX_SUPPLY agents can be free, a normal approximation would badly miss the tails
    that decide a small team's abandonment, so the supply is exact (Poisson-binomial), the answered lines
    (likely humans) too, and the ringing lines (each a small chance) are Poisson, which errs on the
    careful side. Larger teams use a normal approximation refined with the skewness.
    """

    EXACT_MAX_SUPPLY = 4
    LIKELY = 0.25  # a line whose chance of a human verdict exceeds this is treated exactly

    def __init__(self, cells: int, base: int = 0, supply: list | None = None, demand: list | None = None) -> None:
        self.cells = cells
        self.base = base
        self.supply: list[Row] = list(supply) if supply else []
        self.demand: list[Row] = list(demand) if demand else []
        self.exact = False

    def prepare(self) -> None:
        self.top = self.base + len(self.supply)
        self.exact = self.top <= self.EXACT_MAX_SUPPLY and len(self.supply) <= self.EXACT_MAX_SUPPLY
        if self.exact:
            self._prepare_exact()
        else:
            self._prepare_moments()

    def with_demand(self, demand: list[Row]) -> Exposure:
        """A prepared exposure with the same agents and another demand (the supply side is reused)."""
        other = Exposure(self.cells, self.base, self.supply, [])
        other.top, other.exact = self.top, self.exact
        if self.exact:
            other.supply_cols = self.supply_cols
            other._reset_demand_exact()
        else:
            other.mean, other.var, other.k3 = self._supply_moments
        other.extend_demand(demand)
        return other

    # exact ---------------------------------------------------------------------------------------------
    # Distributions are kept as columns: column i holds P(count = i) for every cell, so each step is one
    # pass over the cells. The demand's last column lumps "top or more" (more never matters).

    def _prepare_exact(self) -> None:
        cells = self.cells
        supply = [[1.0] * cells]
        for row in self.supply:
            p = row.p
            q = [1.0 - x for x in p]
            grown = [list(map(mul, supply[0], q))]
            for j in range(1, len(supply)):
                grown.append([a * y + b * x for a, b, x, y in zip(supply[j], supply[j - 1], p, q, strict=True)])
            grown.append(list(map(mul, supply[-1], p)))
            supply = grown
        self.supply_cols = supply
        self._reset_demand_exact()
        for row in self.demand:
            self._add_exact(row)

    def _reset_demand_exact(self) -> None:
        cells = self.cells
        self.likely_cols = [[1.0] * cells] + [[0.0] * cells for _ in range(max(1, self.top))]
        self.no_likely = True
        self.rate = [0.0] * cells

    def _add_exact(self, row: Row) -> None:
        p_row = row.p
        if p_row[-1] > self.LIKELY or self.top <= 2:
            self.likely_cols = _push_columns(self.likely_cols, p_row)
            self.no_likely = False
        else:
            self.rate = [r + p for r, p in zip(self.rate, p_row, strict=True)]

    def _p_short_exact(self, extra: Row | None, n: int) -> list[float]:
        base = self.base
        top = self.top
        cells = self.cells
        if top <= 0:
            return [1.0] * cells
        demand = self.likely_cols
        rate = self.rate
        if extra is not None:
            if top <= 2:
                for _ in range(n):
                    demand = _push_columns(demand, extra.p)
            else:
                rate = [r + n * p for r, p in zip(rate, extra.p, strict=True)]
        if any(rate):
            arrivals = _poisson_columns(rate, top)
            # Without likely lines the demand is the Poisson part alone.
            demand = arrivals if demand is self.likely_cols and self.no_likely else _convolve_columns(demand, arrivals)
        # P(E <= 0) = sum_j P(S = j) P(D >= base + j), with P(D >= i) peeled off column by column.
        out = [0.0] * cells
        at_least = [1.0] * cells
        need = 0
        for j, column in enumerate(self.supply_cols):
            target = base + j
            if target > top:
                break
            while need < target:
                at_least = [a - d for a, d in zip(at_least, demand[need], strict=True)]
                need += 1
            out = [o + c * t for o, c, t in zip(out, column, at_least, strict=True)]
        return [1.0 if x > 1.0 else 0.0 if x < 0.0 else x for x in out]

    # moments -------------------------------------------------------------------------------------------

    def _prepare_moments(self) -> None:
        cells = self.cells
        supply = cumulant_sums(self.supply, cells)
        demand = cumulant_sums(self.demand, cells)
        base = self.base
        self._supply_moments = ([base + a for a in supply[:cells]], supply[cells : 2 * cells], supply[2 * cells :])
        self.mean = [base + a - b for a, b in zip(supply[:cells], demand[:cells], strict=True)]
        self.var = [a + b for a, b in zip(supply[cells : 2 * cells], demand[cells : 2 * cells], strict=True)]
        self.k3 = [a - b for a, b in zip(supply[2 * cells :], demand[2 * cells :], strict=True)]

    def _p_short_moments(self, extra: Row | None, n: int) -> list[float]:
        if extra is None:
            return list(map(_refined_normal_le_zero, self.mean, self.var, self.k3))
        cells = self.cells
        c = extra.cumulants
        return list(
            map(
                _refined_normal_le_zero,
                [m - n * x for m, x in zip(self.mean, c[:cells], strict=True)],
                [v + n * x for v, x in zip(self.var, c[cells : 2 * cells], strict=True)],
                [k - n * x for k, x in zip(self.k3, c[2 * cells :], strict=True)],
            )
        )

    # both ----------------------------------------------------------------------------------------------

    def extend_demand(self, rows: list[Row]) -> None:
        if not rows:
            return
        self.demand.extend(rows)
        if self.exact:
            for row in rows:
                self._add_exact(row)
            return
        cells = self.cells
        d = cumulant_sums(rows, cells)
        self.mean = [m - x for m, x in zip(self.mean, d[:cells], strict=True)]
        self.var = [v + x for v, x in zip(self.var, d[cells : 2 * cells], strict=True)]
        self.k3 = [k - x for k, x in zip(self.k3, d[2 * cells :], strict=True)]

    def p_short_without(self, row: Row) -> list[float]:
        """p_short() with one of the demand rows taken out."""
        if not self.exact:
            return self._p_short_moments(row, -1)
        rest = list(self.demand)
        rest.remove(row)
        other = Exposure(self.cells, self.base, self.supply, rest)
        other.prepare()
        return other.p_short()

    def p_short(self, extra: Row | None = None, copies: int = 0) -> list[float]:
        """P(E <= 0) per cell, with `copies` more lines of row `extra` counted as demand."""
        if copies <= 0 or extra is None:
            extra, copies = None, 0
        if self.exact:
            return self._p_short_exact(extra, copies)
        return self._p_short_moments(extra, copies)


def cumulant_sums(rows: list[Row], cells: int) -> list[float]:
    """The cumulants of a sum of independent rows: the sums of theirs."""
    if not rows:
        return [0.0] * (3 * cells)
    return list(map(sum, zip(*[r.cumulants for r in rows], strict=True)))


def _push_columns(columns: list[list[float]], p: list[float]) -> list[list[float]]:
    """Add a Bernoulli (p per cell) to a count distribution in columns whose last column lumps the top."""
    q = [1.0 - x for x in p]
    last = len(columns) - 1
    out = [list(map(mul, columns[0], q))]
    for i in range(1, last):
        out.append([a * y + b * x for a, b, x, y in zip(columns[i], columns[i - 1], p, q, strict=True)])
    out.append([a + b * x for a, b, x in zip(columns[last], columns[last - 1], p, strict=True)])
    return out


def _poisson_columns(rate: list[float], top: int) -> list[list[float]]:
    """Poisson(rate per cell) in columns 0..top, the last lumping "top or more"."""
    term = [math.exp(-r) for r in rate]
    out = [term]
    for i in range(1, top):
        term = [t * r / i for t, r in zip(term, rate, strict=True)]
        out.append(term)
    below = list(map(sum, zip(*out, strict=True)))
    out.append([max(0.0, 1.0 - b) for b in below])
    return out


def _convolve_columns(a: list[list[float]], b: list[list[float]]) -> list[list[float]]:
    """The distribution of the sum of two counts in lumped columns of equal height."""
    top = len(a) - 1
    cells = len(a[0])
    out = [[0.0] * cells for _ in range(top + 1)]
    for i, column in enumerate(a):
        if not any(column):
            continue
        for j, other in enumerate(b):
            slot = out[min(top, i + j)]
            slot[:] = [s + x * y for s, x, y in zip(slot, column, other, strict=True)]
    return out


def _refined_normal_le_zero(mean: float, var: float, k3: float) -> float:
    """P(X <= 0) for an integer sum of Bernoullis with these cumulants (continuity + skewness corrected)."""
    if var < 1e-9:
        return 1.0 if mean < 0.5 else 0.0
    sd = math.sqrt(var)
    z = (0.5 - mean) / sd
    gamma = k3 / (var * sd)
    p = phi_cdf(z) + gamma * (1.0 - z * z) * math.exp(-0.5 * z * z) * INV_SQRT_2PI / 6.0
    return 0.0 if p < 0.0 else 1.0 if p > 1.0 else p


