"Coverage of the study's intervals, simulated at the noise the quick study measured (issue: calibrated paired intervals)."
import numpy as np
import pytest

from cit_study.metrics import crossed_interval, MIN_SEEDS

# A paired difference of two methods: x[s, j] = truth + u_s (seed) + v_j (item, shared by the seeds) + e[s, j].
# Measured at quick scale: seed SD about 2.7 F_T points; one run's item-bootstrap SE about 3 points over 64 items (item SD ~24),
# split here in several ways between the shared item effect and the rest.
SETTINGS = [  # seeds, items, seed SD, shared item SD, other item SD
    (5, 64, 2.7, 17.0, 17.0),
    (5, 256, 2.7, 20.0, 13.0),
    (5, 64, 0.5, 5.0, 24.0),   # item noise dominates
    (5, 256, 4.0, 2.0, 24.0),  # seed noise dominates
]


@pytest.mark.parametrize("S,J,su,sv,se", SETTINGS)
def test_nominal_95_intervals_cover_92_to_98_percent_at_5_seeds(S, J, su, sv, se):
    rng, truth, n, hit, widths = np.random.default_rng(S * 1000 + J), 2.0, 2000, 0, []
    for _ in range(n):
        x = truth + rng.normal(0, su, (S, 1)) + rng.normal(0, sv, (1, J)) + rng.normal(0, se, (S, J))
        e = crossed_interval(x.mean(1), [x], [1.0])
        hit += e.lo <= truth <= e.hi; widths.append(e.hi - e.lo)
    assert 0.92 <= hit / n <= 0.98, f"coverage {hit / n:.3f}"


def test_seeds_alone_miss_the_shared_items():
    "With a strong item effect shared by every seed, an interval over seeds alone covers far less than 95%; the crossed one still covers."
    rng, truth, both, alone = np.random.default_rng(7), 2.0, 0, 0
    for _ in range(500):
        x = truth + rng.normal(0, 1.0, (5, 1)) + rng.normal(0, 30.0, (1, 64)) + rng.normal(0, 10.0, (5, 64))
        both += (lambda e: e.lo <= truth <= e.hi)(crossed_interval(x.mean(1), [x], [1.0]))
        alone += (lambda e: e.lo <= truth <= e.hi)(crossed_interval(x.mean(1)))
    assert both / 500 >= 0.92 and alone / 500 < 0.7, (both / 500, alone / 500)


def test_fewer_than_three_seeds_give_no_interval():
    e = crossed_interval([1.0, 3.0], [np.ones((2, 8))], [1.0])
    assert MIN_SEEDS == 3 and e.degenerate and np.isnan(e.lo) and e.fmt() == "2.0 (2 seeds, no interval)"
