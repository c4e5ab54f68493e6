"""The Monte Carlo module's figures (issue #20, tests/README.md) each against a computation written
here from JCGM 101's definitions: the draws are re-made from the documented seeding, so every
figure must agree to rounding, not only statistically."""

import math

import numpy as np
import pytest

from jacprop.errors import UsageError
from jacprop.uncertainty import distributions as dist
from jacprop.uncertainty import montecarlo as mc

A = np.array([[1.5, -2.0, 0.5], [0.25, 1.0, -3.0]])  # a linear model y = A x + c, K = 2, D = 3
C = np.array([0.1, -7.0])


def linear(X):
    return X @ A.T + C


def jcgm_interval(m, p):
    """JCGM 101 7.7.1: q = pM (when an integer) else floor(pM + 1/2); r = (M - q)/2 or (M - q + 1)/2; 0-based."""
    pm = p * m
    q = int(round(pm)) if abs(pm - round(pm)) < 1e-9 else math.floor(pm + 0.5)
    q = min(max(q, 1), m - 1)  # too few draws for p (q = M): the whole range, as jacprop does
    r = (m - q) // 2 if (m - q) % 2 == 0 else (m - q + 1) // 2
    return r - 1, r - 1 + q


@pytest.mark.parametrize("m,p", [(10_000, 0.95), (1001, 0.95), (1000, 0.9), (37, 0.5), (200, 0.99), (7, 0.6),
                                 (7, 0.1), (3, 0.3), (20, 0.99)])
def test_symmetric_interval_index_follows_jcgm_101_7_7(m, p):
    assert mc.interval_index(m, p, None, "symmetric") == jcgm_interval(m, p)


def test_shortest_interval_is_the_narrowest_of_all_windows_of_q_draws():
    rng = np.random.default_rng(5)
    ys = np.sort(rng.lognormal(size=(3, 500, 2)), axis=-2)
    lo, hi = mc.interval_index(500, 0.9, ys, "shortest")
    q = 450
    for g in range(3):
        for k in range(2):
            widths = [ys[g, r + q, k] - ys[g, r, k] for r in range(500 - q)]
            assert lo[g, k] == int(np.argmin(widths)) and hi[g, k] == lo[g, k] + q


def test_interval_index_of_one_and_two_draws():
    assert mc.interval_index(1, 0.95, None, "symmetric") == (0, 0)
    assert mc.interval_index(2, 0.95, None, "symmetric") == (0, 1)


@pytest.mark.parametrize("u,digits,delta", [(0.0123, 2, 0.5e-3), (0.0123, 1, 0.5e-2), (4.56e5, 3, 0.5e3),
                                            (1.0, 2, 0.05), (0.0, 2, 0.0), (9.99, 1, 0.5)])
def test_tolerance_is_half_a_unit_of_the_last_digit(u, digits, delta):
    assert mc.tolerance(np.array([u]), digits)[0] == pytest.approx(delta, rel=1e-12, abs=0)


def test_summary_of_draws_from_the_formulas():
    rng = np.random.default_rng(11)
    ys = rng.gamma(2.0, size=(2, 4001, 3))  # skewed: the fourth moment differs from a normal's
    opts = mc.McOptions(level=0.95)
    s = mc.summary(ys, opts)
    n = 4001
    lo_i, hi_i = jcgm_interval(n, 0.95)
    for g in range(2):
        for k in range(3):
            y = ys[g, :, k]
            sd = np.std(y, ddof=1)
            m4 = np.mean((y - y.mean()) ** 4)
            se = math.sqrt((m4 - sd**4 * (n - 3) / (n - 1)) / n) / (2 * sd)
            srt = np.sort(y)
            assert s["mean"][g, k] == pytest.approx(y.mean(), rel=1e-13)
            assert s["std"][g, k] == pytest.approx(sd, rel=1e-13)
            assert s["std_se"][g, k] == pytest.approx(se, rel=1e-10)
            assert s["mean_se"][g, k] == pytest.approx(sd / math.sqrt(n), rel=1e-13)
            assert s["lo"][g, k] == srt[lo_i] and s["hi"][g, k] == srt[hi_i]
            for name, i in (("lo_se", lo_i), ("hi_se", hi_i)):
                qq = (i + 1) / n
                d = math.ceil(math.sqrt(n * qq * (1 - qq)))
                assert s[name][g, k] == pytest.approx((srt[min(i + d, n - 1)] - srt[max(i - d, 0)]) / 2, rel=1e-13)


def test_summary_of_constant_draws_has_zero_spread_and_zero_standard_errors():
    s = mc.summary(np.full((1, 50, 1), 3.0), mc.McOptions())
    assert s["std"][0, 0] == 0 and s["std_se"][0, 0] == 0 and s["lo_se"][0, 0] == 0
    assert s["lo"][0, 0] == s["hi"][0, 0] == 3.0


def test_pooled_std_is_the_std_of_all_draws_together():
    rng = np.random.default_rng(3)
    batches = rng.normal(size=(5, 300, 2)) * [1.0, 4.0] + rng.normal(size=(5, 1, 2))
    got = mc._pooled_std(batches.mean(axis=1), batches.std(axis=1, ddof=1), 300)
    np.testing.assert_allclose(got, batches.reshape(-1, 2).std(axis=0, ddof=1), rtol=1e-12)


def test_batch_size_of_jcgm_101_7_9():
    assert mc.McOptions(samples=10**6, level=0.95).batch == 10_000
    assert mc.McOptions(samples=10**6, level=0.999).batch == 100_000  # ceil(100 / 0.001)
    assert mc.McOptions(samples=5000, level=0.95).batch == 5000
    assert mc.McOptions(samples=5000, digits=None).batch == 5000


def reproduce(X, dx, corr, rows, seed, m, kinds=None):
    """The draws jacprop documents: per row a generator seeded (seed, row), z from ``kinds``, R^1/2 z."""
    d = X.shape[1]
    root = None
    if corr is not None:
        w, v = np.linalg.eigh(corr)
        root = v @ np.diag(np.sqrt(np.clip(w, 0, None))) @ v.T
    out = []
    for x, u, r in zip(X, dx, rows):
        rng = np.random.default_rng([seed, int(r)])
        z = dist.draws(rng, m, kinds or (("normal", 0.0),) * d) if kinds else rng.standard_normal((m, d))
        if root is not None:
            z = z @ root.T
        out.append(linear(x + z * u))
    return np.stack(out)  # (N, m, K)


@pytest.mark.parametrize("corr", [None, np.array([[1, 0.7, -0.2], [0.7, 1, 0.1], [-0.2, 0.1, 1.0]])])
def test_fixed_run_reproduces_every_figure_from_the_seeded_draws(corr):
    X = np.array([[0.5, 1.0, -1.0], [2.0, -0.5, 0.0], [1.0, 1.0, 1.0]])
    dx = np.array([[0.1, 0.2, 0.05], [0.3, 0.0, 0.1], [0.01, 0.02, 0.03]])
    rows = np.array([4, 9, 10])
    opts = mc.McOptions(samples=3000, seed=17, level=0.9, digits=None)
    got = mc.monte_carlo(linear, X, dx, corr, rows, opts)
    ys = reproduce(X, dx, corr, rows, 17, 3000)
    lo_i, hi_i = jcgm_interval(3000, 0.9)
    srt = np.sort(ys, axis=1)
    np.testing.assert_allclose(got["dy_mc"], ys.std(axis=1, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(got["mc_shift"], ys.mean(axis=1) - linear(X), rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(got["mc_shift_se"], ys.std(axis=1, ddof=1) / math.sqrt(3000), rtol=1e-12)
    np.testing.assert_array_equal(got["mc_lo"], srt[:, lo_i])
    np.testing.assert_array_equal(got["mc_hi"], srt[:, hi_i])
    np.testing.assert_array_equal(got["mc_samples"], np.full((3, 2), 3000))
    assert got["mc_converged"].all()
    for i in range(3):
        np.testing.assert_allclose(got["cov_mc"][i], np.cov(ys[i].T), rtol=1e-10, atol=1e-15)
    # and the independent check of the draws' law: cov(y) -> A diag(dx) R diag(dx) A^T
    R = np.eye(3) if corr is None else corr
    for i in range(3):
        want = A @ (np.outer(dx[i], dx[i]) * R) @ A.T
        se = np.sqrt((np.outer(np.diag(want), np.diag(want)) + want**2) / 3000)  # of a normal sample covariance
        assert np.all(np.abs(got["cov_mc"][i] - want) <= 5 * se + 1e-15)


def test_a_rows_result_does_not_depend_on_the_rows_beside_it():
    X = np.array([[0.5, 1.0, -1.0], [2.0, -0.5, 0.0]])
    dx = np.full((2, 3), 0.1)
    opts = mc.McOptions(samples=20_000, seed=2)
    both = mc.monte_carlo(linear, X, dx, None, np.array([1, 2]), opts)
    alone = mc.monte_carlo(linear, X[1:], dx[1:], None, np.array([2]), opts)
    for name in ("dy_mc", "mc_lo", "mc_hi", "mc_samples", "dy_mc_se"):
        np.testing.assert_array_equal(both[name][1:], alone[name])


def shortest_ends(srt, q):
    """The narrowest window of q + 1 sorted values per (batch, output): (lo values, hi values)."""
    widths = srt[:, q:, :] - srt[:, :-q, :]
    lo = widths.argmin(axis=1)
    take = np.take_along_axis
    return take(srt, lo[:, None, :], 1)[:, 0], take(srt, lo[:, None, :] + q, 1)[:, 0]


def adaptive_reference(ys_all, m, p, digits, interval="symmetric"):
    """JCGM 101 7.9 on a row's draws in batches of m: the number of batches h >= 2 after which
    2 s <= delta for the mean, std and both interval ends of every output."""
    for h in range(2, len(ys_all) // m + 1):
        b = ys_all[: h * m].reshape(h, m, -1)
        srt = np.sort(b, axis=1)
        lo, hi = jcgm_interval(m, p)
        ends = (srt[:, lo], srt[:, hi]) if interval == "symmetric" else shortest_ends(srt, hi - lo)
        vals = np.stack([b.mean(axis=1), b.std(axis=1, ddof=1), *ends])  # (4, h, K)
        s = vals.std(axis=1, ddof=1) / math.sqrt(h)
        u = ys_all[: h * m].std(axis=0, ddof=1)
        ell = np.floor(np.log10(u)) - digits + 1
        if np.all(2 * s <= 0.5 * 10.0**ell):
            return h
    return None


@pytest.mark.parametrize("digits", [1, 2])
def test_adaptive_run_stops_after_the_batch_jcgm_101_7_9_says(digits):
    X = np.array([[0.5, 1.0, -1.0]])
    dx = np.array([[0.1, 0.2, 0.05]])
    opts = mc.McOptions(samples=400_000, seed=4, level=0.95, digits=digits)
    got = mc.monte_carlo(linear, X, dx, None, np.array([1]), opts)
    ys = reproduce(X, dx, None, [1], 4, 400_000)[0]  # the first m draws of each batch follow one generator
    # a row's generator draws batch after batch, so the first h batches are the first h * m draws
    h = adaptive_reference(ys, 10_000, 0.95, digits)
    assert h is not None
    assert got["mc_samples"][0, 0] == h * 10_000
    assert got["mc_converged"][0]
    np.testing.assert_allclose(got["dy_mc"][0], ys[: h * 10_000].std(axis=0, ddof=1), rtol=1e-12)


def test_a_row_that_reaches_the_cap_is_not_converged():
    X = np.array([[0.5, 1.0, -1.0]])
    opts = mc.McOptions(samples=20_000, seed=4, level=0.95, digits=4)
    got = mc.monte_carlo(linear, X, np.full((1, 3), 0.1), None, np.array([1]), opts)
    assert got["mc_samples"][0, 0] == 20_000 and not got["mc_converged"][0]


def test_a_non_finite_result_stops_the_row_after_one_batch():
    def forward(X):
        y = linear(X)
        y[X[:, 0] > 0.6] = np.nan
        return y

    got = mc.monte_carlo(forward, np.array([[0.5, 1.0, -1.0]]), np.full((1, 3), 0.1), None, np.array([1]),
                         mc.McOptions(samples=100_000, seed=1))
    assert got["mc_samples"][0, 0] == 10_000 and not got["mc_converged"][0]
    assert np.isnan(got["dy_mc"][0]).all() and np.isnan(got["dy_mc_se"][0]).all()


def test_too_many_draws_per_row_are_refused_before_drawing():
    with pytest.raises(UsageError, match=r"--samples 100000000 with 2 outputs keeps 1\.5 GiB of draws per row"):
        mc.monte_carlo(linear, np.zeros((1, 3)), np.ones((1, 3)), None, np.array([1]),
                       mc.McOptions(samples=100_000_000))


def test_validate_from_jcgm_101_8_1():
    y, u, k = np.array([1.0, 1.0]), np.array([0.1, 0.1]), 2.0
    lo, hi = np.array([0.8004, 0.79]), np.array([1.1996, 1.2])
    v = mc.validate(y, u, k, lo, hi, 2)
    np.testing.assert_allclose(v["gum_d_low"], [4e-4, 1e-2], rtol=1e-9)
    np.testing.assert_allclose(v["gum_d_high"], [4e-4, 0], atol=1e-15)
    np.testing.assert_allclose(v["gum_delta"], [5e-3, 5e-3], rtol=1e-12)
    np.testing.assert_array_equal(v["gum_valid"], [1.0, 0.0])
    nan = mc.validate(np.array([np.nan]), np.array([0.1]), k, np.array([0.8]), np.array([1.2]), 2)
    assert nan["gum_valid"][0] == 0.0


@pytest.mark.parametrize("kind,nu,lo,hi,kurt", [("rect", 0, -math.sqrt(3), math.sqrt(3), 1.8),
                                                ("triangular", 0, -math.sqrt(6), math.sqrt(6), 2.4),
                                                ("arcsine", 0, -math.sqrt(2), math.sqrt(2), 1.5),
                                                ("t", 7.0, -np.inf, np.inf, 3 + 6 / 3)])
def test_each_distribution_has_unit_variance_its_support_and_its_kurtosis(kind, nu, lo, hi, kurt):
    z = dist.draws(np.random.default_rng(8), 400_000, (("normal", 0.0), (kind, nu)))
    assert z[:, 1].var() == pytest.approx(1.0, abs=0.01)
    assert abs(z[:, 1].mean()) < 0.01
    assert lo <= z[:, 1].min() and z[:, 1].max() <= hi
    if np.isfinite(hi):
        assert z[:, 1].max() > 0.99 * hi and z[:, 1].min() < 0.99 * lo
    k4 = np.mean(z[:, 1] ** 4) / z[:, 1].var() ** 2
    assert k4 == pytest.approx(kurt, rel=0.08 if kind == "t" else 0.01)
    # the normal input's draws come first: exactly the generator's first standard normals
    np.testing.assert_array_equal(z[:, 0], np.random.default_rng(8).standard_normal((400_000, 2))[:, 0])


@pytest.mark.parametrize("text,want", [("rect", ("rect", 0.0)), (" t:5 ", ("t", 5.0)), ("t:inf", ("normal", 0.0)),
                                       ("t:2.5e0", ("t", 2.5)), ("arcsine", ("arcsine", 0.0)),
                                       ("normal", ("normal", 0.0)), ("triangular", ("triangular", 0.0))])
def test_parse_kind(text, want):
    assert dist.parse_kind(text, "--dist x") == want


@pytest.mark.parametrize("text,message", [("uniform", "--dist x: expected normal, rect, triangular, arcsine or t:NU"),
                                          ("t:2", "--dist x: t:NU needs NU > 2 (a t with NU <= 2 has no standard"),
                                          ("t:1.2.3", "--dist x: t:NU needs a number NU > 2, got '1.2.3'"),
                                          ("t:nan", "--dist x: expected normal")])
def test_parse_kind_refuses(text, message):
    with pytest.raises(UsageError) as e:
        dist.parse_kind(text, "--dist x")
    assert str(e.value).startswith(message)


def bent(X):
    """A skewed output (exp), where the shortest and the symmetric interval differ."""
    return np.exp(X[:, :1] * 3)


def test_adaptive_run_with_the_shortest_interval_uses_shortest_batch_intervals():
    X, dx = np.array([[0.0, 0.0, 0.0]]), np.array([[0.2, 0.0, 0.0]])
    opts = mc.McOptions(samples=200_000, seed=4, level=0.95, digits=1, interval="shortest")
    got = mc.monte_carlo(bent, X, dx, None, np.array([1]), opts)
    rng = np.random.default_rng([4, 1])
    ys = bent(X + rng.standard_normal((200_000, 3)) * dx)
    h_short = adaptive_reference(ys, 10_000, 0.95, 1, "shortest")  # 3 batches (the symmetric interval's: 8)
    h_sym = adaptive_reference(ys, 10_000, 0.95, 1, "symmetric")
    assert h_short is not None and h_short != h_sym  # the case tells the two apart
    assert got["mc_samples"][0, 0] == h_short * 10_000
    srt = np.sort(ys[: h_short * 10_000], axis=0)[None]
    lo, hi = shortest_ends(srt, jcgm_interval(h_short * 10_000, 0.95)[1] - jcgm_interval(h_short * 10_000, 0.95)[0])
    assert (got["mc_lo"][0, 0], got["mc_hi"][0, 0]) == (lo[0, 0], hi[0, 0])


def test_batch_figures_use_the_unbiased_std_and_the_intervals_ends():
    rng = np.random.default_rng(2)
    ys = rng.normal(size=(3, 1000, 2))
    f = mc._batch_figures(ys, mc.McOptions(level=0.9))
    lo, hi = jcgm_interval(1000, 0.9)
    srt = np.sort(ys, axis=1)
    np.testing.assert_allclose(f["std"], ys.std(axis=1, ddof=1), rtol=1e-13)
    np.testing.assert_allclose(f["mean"], ys.mean(axis=1), rtol=1e-13)
    np.testing.assert_array_equal(f["lo"], srt[:, lo])
    np.testing.assert_array_equal(f["hi"], srt[:, hi])


def test_validate_accepts_ends_exactly_at_the_tolerance():
    """u = 2 at one digit: delta = 0.5; y = 10, U = 4: ends at 5.5 and 14.5 are d = 0.5 = delta (JCGM 101 8.1.2: <=)."""
    v = mc.validate(np.array([10.0, 10.0]), np.array([2.0, 2.0]), 2.0, np.array([5.5, 5.5]),
                    np.array([14.5, 14.5001]), 1)
    np.testing.assert_array_equal(v["gum_delta"], [0.5, 0.5])
    np.testing.assert_array_equal(v["gum_valid"], [1.0, 0.0])


def test_a_float32_forward_is_summarised_in_float64():
    X, dx = np.array([[0.5, 1.0, -1.0]]), np.array([[0.1, 0.2, 0.05]])

    def forward32(X):
        return linear(X).astype(np.float32)

    got = mc.monte_carlo(forward32, X, dx, None, np.array([1]), mc.McOptions(samples=5000, seed=3, digits=None))
    rng = np.random.default_rng([3, 1])
    ys = forward32(X + rng.standard_normal((5000, 3)) * dx).astype(np.float64)
    np.testing.assert_allclose(got["dy_mc"][0], ys.std(axis=0, ddof=1), rtol=1e-13)
    np.testing.assert_allclose(got["mc_shift"][0], ys.mean(axis=0) - forward32(X)[0], rtol=1e-10)


def test_a_row_without_uncertainty_converges_after_two_batches():
    """u = 0: the tolerance is 0 and so is every spread; 0 <= 0 ends the run (JCGM 101 7.9.4)."""
    got = mc.monte_carlo(linear, np.array([[0.5, 1.0, -1.0]]), np.zeros((1, 3)), None, np.array([1]),
                         mc.McOptions(samples=100_000, seed=3))
    assert got["mc_samples"][0, 0] == 20_000 and got["mc_converged"][0]
    # not exactly 0 today: the mean over draws (axis -2 of (g, n, K), K > 1) is summed naively, so 20,000
    # equal values give a mean ~3e-13 off (reported in tests/README.md)
    assert np.all(got["dy_mc"][0] <= 1e-11 * np.abs(linear(np.array([[0.5, 1.0, -1.0]]))[0]))


def test_the_draws_memory_cap_is_4_x_256_mib_per_row():
    X, dx = np.zeros((0, 3)), np.zeros((0, 3))  # no rows: the cap is checked, nothing is drawn
    at_cap = 4 * mc.MEMORY // (2 * 8)  # samples x 2 outputs x 8 bytes = exactly 1 GiB: allowed
    assert mc.monte_carlo(linear, X, dx, None, np.zeros(0, int), mc.McOptions(samples=at_cap))["dy_mc"].shape == (0, 2)
    with pytest.raises(UsageError, match=r"--samples 67108865 with 2 outputs keeps 1\.0 GiB"):
        mc.monte_carlo(linear, X, dx, None, np.zeros(0, int), mc.McOptions(samples=at_cap + 1))


def test_summary_of_two_draws():
    s = mc.summary(np.array([[[1.0], [4.0]]]), mc.McOptions())
    assert s["std"][0, 0] == pytest.approx(3 / math.sqrt(2), rel=1e-15)
    assert s["mean"][0, 0] == 2.5


def test_rows_in_memory_sized_groups_and_with_different_draw_counts():
    """40 rows capped at 2,000,000 draws of one output keep 16 MB each: groups of 256 MiB // 16 MB = 16
    rows; rows stop after different numbers of batches.  Each row must equal the row run alone."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    dx = np.abs(rng.normal(size=(40, 3))) * 0.1
    dx[::3] = 0  # these converge after two batches
    opts = mc.McOptions(samples=2_000_000, seed=6, digits=1)
    one = lambda X: linear(X)[:, :1]  # noqa: E731
    assert 16 == mc.MEMORY // (2_000_000 * 8) < 200_000 // opts.batch
    got = mc.monte_carlo(one, X, dx, None, np.arange(1, 41), opts)
    assert got["mc_converged"].dtype == bool and got["mc_converged"].all()
    counts = got["mc_samples"][:, 0]
    assert len(set(counts.tolist())) > 1 and np.all(counts[::3] == 20_000)
    for r in (0, 1, 17, 33, 39):
        alone = mc.monte_carlo(one, X[r:r + 1], dx[r:r + 1], None, np.array([r + 1]), opts)
        assert got["mc_samples"][r, 0] == alone["mc_samples"][0, 0]
        for name in ("dy_mc", "mc_lo", "mc_hi", "mc_shift"):  # the forward of other batch sizes: rounding apart
            np.testing.assert_allclose(got[name][r], alone[name][0], rtol=1e-12, atol=1e-15)


def test_draws_follow_the_documented_formulas_draw_for_draw():
    """normal first (all inputs at once), then per input: rect (2V - 1) sqrt 3, triangular (V1 + V2 - 1) sqrt 6,
    arcsine sqrt 2 sin(pi (V - 1/2)), t standard_t(nu) sqrt((nu - 2) / nu)."""
    kinds = (("rect", 0.0), ("normal", 0.0), ("triangular", 0.0), ("arcsine", 0.0), ("t", 5.0))
    z = dist.draws(np.random.default_rng(12), 1000, kinds)
    rng = np.random.default_rng(12)
    want = rng.standard_normal((1000, 5))
    want[:, 0] = (2 * rng.random(1000) - 1) * math.sqrt(3)
    want[:, 2] = (rng.random(1000) + rng.random(1000) - 1) * math.sqrt(6)
    want[:, 3] = math.sqrt(2) * np.sin(math.pi * (rng.random(1000) - 0.5))
    want[:, 4] = rng.standard_t(5.0, 1000) * math.sqrt(3 / 5)
    np.testing.assert_allclose(z, want, rtol=1e-15, atol=1e-15)
    assert dist.parse_kind("t:1E1", "--dist x") == ("t", 10.0)


@pytest.mark.parametrize("level", [0.5, 0.9, 0.95, 0.99])
def test_standard_errors_of_small_and_tiny_samples_from_the_formulas(level):
    """Every n from 2 to 120 (the clamps at both ends of the sorted draws), spread 1e-3 (below 1)."""
    rng = np.random.default_rng(7)
    opts = mc.McOptions(level=level)
    for n in range(2, 121):
        y = rng.normal(size=n) * 1e-3
        s = mc.summary(y[None, :, None], opts)
        sd = np.std(y, ddof=1)
        m4 = np.mean((y - y.mean()) ** 4)
        se = math.sqrt(max(m4 - sd**4 * (n - 3) / (n - 1), 0) / n) / (2 * sd)
        assert s["std_se"][0, 0] == pytest.approx(se, rel=1e-9)
        srt = np.sort(y)
        for name, i in zip(("lo_se", "hi_se"), jcgm_interval(n, level)):
            qq = (i + 1) / n
            d = math.ceil(math.sqrt(n * qq * (1 - qq)))
            want = (srt[min(i + d, n - 1)] - srt[max(i - d, 0)]) / 2
            assert s[name][0, 0] == pytest.approx(want, rel=1e-12, abs=0), (n, name)
