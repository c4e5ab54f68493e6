"""uncertainty/coverage.py (issue #20, tests/mutation-mut-prop.md): Student's t, the incomplete beta function
and the coverage factors against values nobody here computed with this code.

The stored references were computed with mpmath 1.3.0 at 50 significant digits (Student's t quantile: the root
of 1 - I_x(nu/2, 1/2) / 2 = p with mpmath's regularised ``betainc``, ``findroot`` to 1e-45; I_x and
ln B(a, b)^-1 from ``betainc``, ``loggamma``; the continued fraction's value as I_x a B(a, b) / (x^a (1-x)^b))
and every one of them agrees with scipy 1.17.1 (``stats.t.ppf``, ``special.betainc``) to 1e-11 relative or
better.  Besides them: closed forms of Student's t for nu = 1, 2, 3, 4 written here, and the density.

Every test here is fast (a few ms): a mutant that makes the continued fraction or the Newton iteration spin is
stopped by the first failing assertion instead of costing minutes of mutmut's timeout.
"""

import math
import statistics
import warnings

import numpy as np
import pytest

from jacprop.errors import UsageError
from jacprop.uncertainty import coverage as cov

P_GRID = [0.6, 0.7, 0.74, 0.76, 0.9, 0.975, 0.999, 1 - 1e-6, 1 - 1e-12]
T_QUANTILE = {  # t_p(nu) for p in P_GRID, mpmath at 50 digits
    1.0: [0.32491969623290623, 0.7265425280053607, 0.9390625058174923, 1.064891840324792, 3.077683537175254,
          12.706204736174694, 318.30883898555015, 318309.88617359026, 318316927901.77966],
    1.25: [0.3104149637472837, 0.6807638440662578, 0.8683033600969978, 0.9765319895363588, 2.5013501674092735,
           8.027951377252055, 106.12828998906734, 26659.245228251064, 1682114427.6466444],
    2.0: [0.2886751345948128, 0.6172133998483674, 0.7737910562629932, 0.8609460320922785, 1.885618083164127,
          4.302652729749462, 22.327124770119866, 707.1057205157671, 707114.6025244079],
    2.5: [0.2814595127485476, 0.5973077382523173, 0.745075047014185, 0.8264103111756798, 1.7302509288071768,
          3.5746548420036817, 13.82219311086596, 220.17342917570426, 55306.663471176085],
    3.0: [0.27667066233268983, 0.5843897274398185, 0.7266619873794447, 0.8044123454504447, 1.6377443536962104,
          3.1824463052837086, 10.214531852407383, 103.29946777942897, 10331.184426046091],
    4.0: [0.27072229470759734, 0.5686490630497053, 0.7044578863851652, 0.778038323232624, 1.533206274058944,
          2.7764451051977934, 7.173182219782307, 41.5778541501515, 1316.0800251221378],
    7.5: [0.26250189880429464, 0.5474128775812611, 0.6748948597825386, 0.7431818510110211, 1.405211846415953,
          2.333039626864974, 4.630319094034101, 13.052169759763295, 83.91722121135727],
    33.0: [0.2553991415437311, 0.529504402716964, 0.65030074702249, 0.7144051653160838, 1.3077371244508864,
           2.0345152974493383, 3.3563372793636277, 5.75253492114296, 10.85399967031521],
    99.0: [0.2540290121518066, 0.5260932405485899, 0.6456495871755947, 0.708985098940559, 1.2901614420344854,
           1.9842169515864172, 3.174603849755752, 5.051973998245606, 8.036987092244717],
    100.0: [0.2540221824582278, 0.5260762706003461, 0.6456264745802686, 0.7089581827755754, 1.290074761346516,
            1.9839715185235518, 3.1737394937387826, 5.048830877221447, 8.025830060218645],
    101.0: [0.2540154882121909, 0.5260596375248577, 0.6456038210462234, 0.7089318013836811, 1.2899898085679689,
            1.983731002955606, 3.1728926657405694, 5.045753204604545, 8.014917910734628],
    250.0: [0.25361688158193907, 0.5250698002392646, 0.6442561502580689, 0.7073626528929243, 1.284947055422256,
            1.9694983934211532, 3.1231502290270914, 4.867928470355432, 7.405395084546775],
    4000.0: [0.2533639543110586, 0.5244423033947334, 0.6434022611421215, 0.7063687341493572, 1.2817632474210852,
             1.9605572287937334, 3.0922710697693447, 4.760443173342387, 7.056742306382311],
    10000.0: [0.2533538434457268, 0.5244172283454667, 0.6433681466392778, 0.7063290300145355, 1.2816362297304777,
              1.960201239890626, 3.0910475160306117, 4.756229685050958, 7.0433746983484715],
    10000.5: [0.25335384310872283, 0.5244172275097053, 0.6433681455022372, 0.706329028691198, 1.2816362254971947,
              1.96020122802704, 3.091047475262308, 4.756229544716889, 7.043374253502881],
    20000.0: [0.2533504732640626, 0.5244088704205391, 0.6433567758405401, 0.7063157962024336, 1.2815938962102156,
              1.9600826051581348, 3.0906398618543305, 4.754826635614809, 7.0389284129312975],
    3e6: [0.25334712560314465, 0.5244005684254206, 0.6433454811947384, 0.706302651061014, 1.2815518477395864,
          1.9599647752974443, 3.0902350228796727, 4.753433655270583, 7.034516504243988],
}
BETA_INC = [  # (a, b, x, I_x(a, b))
    (2.0, 3.0, 0.3, 0.3483),
    (0.5, 0.5, 0.2, 0.2951672353008666),
    (0.5, 7.0, 0.01, 0.28748362987172177),
    (3.5, 0.5, 0.95, 0.5630278036985399),
    (50.0, 0.5, 0.99, 0.3173043978741974),
    (0.5, 50.0, 0.02, 0.8437564921331819),
    (1000.0, 0.5, 0.999, 0.15724727426672383),
    (10.0, 10.0, 0.5, 0.5),
    (10.0, 10.0, 0.6, 0.8139079785845882),
    (1e6, 0.5, 0.999999, 0.15729915515583529),
    (4.0, 2.0, 0.7, 0.5282199999999999),
    (1.0, 1.0, 0.37, 0.37),
]
# (a, b, ln(Gamma(a + b) / (Gamma(a) Gamma(b)))); the first four go through lgamma, the rest through Stirling's series
LOG_INV_BETA_LGAMMA = [(2.0, 3.0, 2.4849066497880004), (49.5, 0.5, 1.3760961822742033),
                       (60.0, 0.7, 2.6034259083927678), (0.5, 0.5, -1.1447298858494002)]
LOG_INV_BETA_STIRLING = [(50.0, 0.5, 1.3811466014510412), (50.5, 0.5, 1.3861465181277048),
                         (0.5, 60.0, 1.4727240289636623), (120.0, 0.5, 1.8203392648136751),
                         (1000.0, 0.5, 2.8813876965715766), (1e6, 0.5, 6.335390211057437),
                         (1.5e8, 0.5, 8.840707982272232)]
BETA_CF = [  # (a, b, x, the continued fraction's value I_x(a, b) a B(a, b) / (x^a (1 - x)^b)), x < (a+1)/(a+b+2)
    (2.0, 3.0, 0.3, 1.880466472303207),
    (0.5, 7.0, 0.01, 1.051747242476784),
    (10.0, 10.0, 0.45, 4.128838552303351),
    (0.5, 50.0, 0.02, 2.0584674387116584),
    (3.0, 0.5, 0.5, 1.8038671967512332),
]
T_PDF = [(0.0, 1.0, 0.3183098861837907), (1.5, 2.5, 0.11766850421719718), (3.0, 7.0, 0.014104682517216093),
         (10.0, 120.0, 4.719527187628635e-17), (2.0, 1e6, 0.053991060997102186)]
T_TAIL = [(0.5, 1.0, 0.35241638234956674), (2.0, 2.5, 0.078695747878983), (3.0, 7.0, 0.00997106306599627),
          (0.1, 30.0, 0.4605048058951356), (1000.0, 3.0, 1.1026538212882963e-09),
          (6.0, 150.0, 7.094604506623342e-09)]


def approx(ref, rel):
    """pytest.approx with no absolute tolerance (its default 1e-12 would hide errors of values below 1)."""
    return pytest.approx(ref, rel=rel, abs=0)


def ulps(value, ref):
    return abs(value - ref) / math.ulp(ref)


# --- the normal quantile and the argument checks ------------------------------------------------------------------

def test_normal_quantile_values_and_refusals():
    assert cov.normal_quantile(0.975) == approx(1.9599639845400538, rel=2.3e-16)  # Phi^-1(0.975) (mpmath)
    assert cov.normal_quantile(0.5) == 0.0
    assert cov.normal_quantile(0.15865525393145707) == pytest.approx(-1.0, abs=1e-15)  # Phi(-1)
    for p in (0.0, 1.0, -0.25, 1.5, math.nan):
        with pytest.raises(UsageError, match=r"^a probability must lie in \(0, 1\), got " + str(p) + "$"):
            cov.normal_quantile(p)


def test_t_quantile_refuses_bad_arguments():
    for p in (0.0, 1.0, -1e-300, 1.0000000000000002, math.nan):
        with pytest.raises(UsageError, match=r"^a probability must lie in \(0, 1\), got " + str(p) + "$"):
            cov.t_quantile(p, 5.0)
    for nu in (0.0, -1.0, -math.inf, math.nan):
        with pytest.raises(UsageError, match=r"^degrees of freedom must be > 0, got " + str(nu) + "$"):
            cov.t_quantile(0.9, nu)
    # p is checked first, whatever nu is
    for p, nu in ((1.0, 0.0), (1.5, math.nan), (2.0, -1.0), (0.0, 0.0)):
        with pytest.raises(UsageError, match=r"^a probability must lie in \(0, 1\), got " + str(p) + "$"):
            cov.t_quantile(p, nu)
    assert cov.t_quantile(0.9, 0.2) == approx(750.8285208112881, rel=1e-13)  # any positive nu (mpmath)


# --- the continued fraction, ln 1/B(a, b), I_x(a, b) --------------------------------------------------------------

@pytest.mark.parametrize("a, b, x, ref", BETA_CF)
def test_beta_continued_fraction_value(a, b, x, ref):
    assert cov._beta_cf(a, b, x) == approx(ref, rel=1e-15)


def test_log_inv_beta_through_lgamma_and_through_stirlings_series():
    for a, b, ref in LOG_INV_BETA_LGAMMA:
        assert abs(cov._log_inv_beta(a, b) - ref) <= 1e-13, (a, b)
    for a, b, ref in LOG_INV_BETA_STIRLING:  # the difference of lgamma would be 120 (a = 50) to 8e7 ulp off
        assert ulps(cov._log_inv_beta(a, b), ref) <= 4, (a, b)
    for a, b, ref in LOG_INV_BETA_LGAMMA:  # symmetric in a and b
        assert abs(cov._log_inv_beta(b, a) - ref) <= 1e-13, (a, b)
    for a, b, ref in LOG_INV_BETA_STIRLING:
        assert ulps(cov._log_inv_beta(b, a), ref) <= 4, (a, b)


@pytest.mark.parametrize("a, b, x, ref", BETA_INC)
def test_regularised_incomplete_beta(a, b, x, ref):
    assert cov.beta_inc(a, b, x) == approx(ref, rel=1e-14)
    assert cov.beta_inc(a, b, x, 1 - x) == approx(ref, rel=1e-14)
    assert cov.beta_inc(b, a, 1 - x) == pytest.approx(1 - ref, rel=2e-14, abs=1e-16)  # I_x(a, b) = 1 - I_1-x(b, a)


def test_incomplete_beta_at_and_beyond_the_ends_and_with_y_given():
    for x in (0.0, -0.5, -math.inf):
        assert cov.beta_inc(2.5, 0.5, x) == 0.0
    for x in (1.0, 1.5):
        assert cov.beta_inc(2.5, 0.5, x) == 1.0
    assert cov.beta_inc(2.5, 0.5, 0.3, y=0.0) == 1.0  # y says x = 1
    assert cov.beta_inc(2.5, 0.5, 0.3, y=-1e-3) == 1.0
    # y = 1 - x known exactly beyond 1 - x's rounding: x = 1 - 1e-20 rounds to 1.0.  I_x(1, 1/2) = 1 - (1 - x)^1/2
    assert cov.beta_inc(1.0, 0.5, 1.0, y=1e-20) == approx(1 - 1e-10, rel=1e-16)
    # and x tiny with y given as 1 - x: I_x(1/2, 1) = x^1/2
    assert cov.beta_inc(0.5, 1.0, 1e-30, y=1.0) == approx(1e-15, rel=1e-14)
    # y is what is used where it is below 1/2 (there it is the more exact of the two): a y that is not 1 - x
    # shows which.  I_x(10, 1) = x^10; I_x(3, 2) = 1 - I_(1-x)(2, 3), I_y(2, 3) = 6y^2(1-y)^2 + 4y^3(1-y) + y^4
    # the fraction's branch: the front factor x^a y^b B(a, b)^-1 from y (x^a as (1 - y)^a), the fraction from x:
    # its value for b = 1 is 1 / (1 - x), so I = (1 - y)^10 y 10 / (1 - x) / 10
    assert cov.beta_inc(10.0, 1.0, 0.6, y=0.41) == approx(0.59**10 * 0.41 / 0.4, rel=1e-14)
    y = 0.303
    assert cov.beta_inc(3.0, 2.0, 0.7, y=y) == approx(
        1 - (6 * y**2 * (1 - y) ** 2 + 4 * y**3 * (1 - y) + y**4), rel=1e-14)  # the 1 - I_y(b, a) branch
    assert cov.beta_inc(2.0, 3.0, 0.3, y=0.75) == approx(0.3483, rel=1e-14)  # y >= 1/2: x is used


def test_incomplete_beta_of_exactly_known_cases():
    # I_x(a, 1) = x^a and I_x(1, b) = 1 - (1 - x)^b, on both sides of the switch at (a + 1) / (a + b + 2)
    for a in (0.5, 3.0, 40.0, 400.0):
        for x in (0.05, 0.4, 0.8, 0.97, 0.999):
            assert cov.beta_inc(a, 1.0, x) == pytest.approx(x**a, rel=2e-13, abs=1e-300), (a, x)
            assert cov.beta_inc(1.0, a, x) == pytest.approx(1 - (1 - x) ** a, rel=2e-13, abs=1e-300), (a, x)
    # I_x(1/2, 1/2) = 2/pi asin(sqrt(x)), the arcsine law
    for x in (1e-8, 0.1, 0.49, 0.5):
        assert cov.beta_inc(0.5, 0.5, x) == approx(2 / math.pi * math.asin(math.sqrt(x)), rel=1e-14)
    for x in (0.51, 0.9, 1 - 1e-9):  # 1 - x is exact here; asin(sqrt(x)) is ill-conditioned near 1
        assert cov.beta_inc(0.5, 0.5, x) == approx(1 - 2 / math.pi * math.asin(math.sqrt(1 - x)), rel=1e-14)


# --- Student's t: density, tail, central probability -------------------------------------------------------------

def closed_form_cdf(t, nu):
    """P(T <= t) for integer nu, A&S 26.7.3 / 26.7.4 (finite sums in theta = atan(t / sqrt(nu)))."""
    theta = math.atan(t / math.sqrt(nu))
    s, c = math.sin(theta), math.cos(theta)
    if nu % 2:
        term, total = c, c if nu > 1 else 0.0
        for j in range(3, nu - 1, 2):
            term *= (j - 1) / j * c * c
            total += term
        a = 2 / math.pi * (theta + s * total) if nu > 1 else 2 / math.pi * theta
    else:
        term = total = 1.0
        for j in range(2, nu - 1, 2):
            term *= (j - 1) / j * c * c
            total += term
        a = s * total
    return 0.5 + a / 2


@pytest.mark.parametrize("t, nu, ref", T_PDF)
def test_t_density(t, nu, ref):
    assert cov.t_pdf(t, nu) == approx(ref, rel=1e-14)
    assert cov.t_pdf(-t, nu) == cov.t_pdf(t, nu)


@pytest.mark.parametrize("t, nu, ref", T_TAIL)
def test_t_tail_and_central_probability(t, nu, ref):
    assert cov.t_tail(t, nu) == approx(ref, rel=1e-14)
    assert cov.t_central(t, nu) == approx(0.5 - ref, rel=1e-14)


def test_t_tail_and_central_against_the_closed_forms():
    for nu in (1, 2, 3, 4, 5, 9, 12):
        for t in (0.05, 0.3, 1.0, 2.5, 7.0):
            F = closed_form_cdf(t, nu)
            assert cov.t_central(t, nu) == approx(F - 0.5, rel=1e-13), (t, nu)
            assert cov.t_tail(t, nu) == pytest.approx(1 - F, rel=1e-13, abs=4e-16), (t, nu)  # 1 - F rounds
    assert cov.t_central(0.0, 3.0) == 0.0 and cov.t_tail(0.0, 3.0) == 0.5
    # far out, x = t^2 / (nu + t^2) rounds to 1: only y = nu / (nu + t^2) keeps the tail, 0.5 - P(0 < T < t)
    t = 1e8
    assert cov.t_tail(t, 1.0) == approx(math.atan(1 / t) / math.pi, rel=1e-14)  # Cauchy
    assert cov.t_central(t, 1.0) == approx(0.5 - math.atan(1 / t) / math.pi, rel=1e-16)  # 1 - x would be 0 here
    # and near the centre, y = t^2 / (nu + t^2) small: 1 - x would keep only its first digits
    assert cov.t_tail(1e-6, 3.0) == approx(1 - closed_form_cdf(1e-6, 3), rel=1e-15)
    assert cov.t_tail(0.7, 1e4) == approx(0.2419717940900582, rel=1e-14)  # mpmath
    c = math.gamma(2) / (math.sqrt(3 * math.pi) * math.gamma(1.5))  # nu = 3: P(T > t) = c 3^2 t^-3 / 3 (1 + O(t^-2))
    assert abs(cov.t_central(t, 3.0) - (0.5 - c * 9 * t**-3 / 3)) < 1e-16
    assert cov.t_tail(t, 3.0) == approx(c * 3 * t**-3, rel=1e-15)


def test_closed_form_cdf_itself():  # the test's own reference against the stored mpmath quantiles
    for nu in (1, 2, 3, 4):
        for p, t in zip(P_GRID[:7], T_QUANTILE[float(nu)][:7]):
            assert closed_form_cdf(t, nu) == approx(p, rel=1e-14)


# --- Student's t quantile -----------------------------------------------------------------------------------------

def test_t_quantile_against_mpmath():
    worst = {}
    for nu, refs in T_QUANTILE.items():
        for p, ref in zip(P_GRID, refs):
            t = cov.t_quantile(p, nu)
            assert cov.t_quantile(1 - p, nu) == -t if p != 1 - 1e-12 else True  # 1 - p is exact for these p
            # as measured (tests/mutation-mut-prop.md): Cornish-Fisher's truncation (nu > 1e4) is 6e-13 off at
            # p = 1 - 1e-12 and 3e-14 at 1 - 1e-6; the Newton path 4.3e-14 at nu = 4000 to 1e4, below 3e-14 elsewhere
            tol = 1e-12 if nu > 1e4 and p >= 1 - 1e-6 else 5e-14 if 4000 <= nu <= 1e4 else 3e-14
            assert t == approx(ref, rel=tol), (p, nu)
            worst[nu, p] = abs(t - ref) / ref
    # and most of the grid to a few ulp: a sloppier iteration or expansion shows here
    assert sum(e <= 2e-15 for e in worst.values()) >= 0.7 * len(worst)


def test_t_quantile_cornish_fisher_region_to_its_documented_accuracy():
    # nu > 1e4: the expansion to nu^-3; its error ~ g4 / nu^4 is below 4e-15 relative for p <= 1 - 1e-6
    for nu in (10000.5, 20000.0, 3e6):
        for p, ref in zip(P_GRID[:-1], T_QUANTILE[nu][:-1]):
            assert cov.t_quantile(p, nu) == approx(ref, rel=4e-14 if nu < 2e4 else 4e-15), (p, nu)
    z = statistics.NormalDist().inv_cdf(0.999)
    assert cov._cornish_fisher(z, 1.0) == approx(  # A&S 26.7.5 written out at nu = 1
        z + (z**3 + z) / 4 + (5 * z**5 + 16 * z**3 + 3 * z) / 96 + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384,
        rel=1e-15)
    assert cov._cornish_fisher(z, 2.0) == approx(
        z + (z**3 + z) / 8 + (5 * z**5 + 16 * z**3 + 3 * z) / 384 + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 3072,
        rel=1e-15)


def test_t_quantile_near_the_centre():
    # t_p = s (1 + (nu + 1) / (6 nu) s^2 + O(s^4)) with s = (p - 1/2) / f(0), f the density: the central equation
    # P(0 < T < t) = p - 1/2 keeps t's relative precision where the tail's 1/2 - (p - 1/2) would lose it
    for nu in (1.25, 2.5, 3.0, 7.5, 33.0, 250.0, 5000.0):
        if nu < 300:  # f(0) = Gamma((nu + 1) / 2) / Gamma(nu / 2) / sqrt(nu pi); math.gamma is good to a few ulp
            ratio = math.gamma((nu + 1) / 2) / math.gamma(nu / 2)
        else:  # Gamma(z + 1/2) / Gamma(z) = sqrt(z) (1 - 1/(8z) + 1/(128z^2) + 5/(1024z^3) - 21/(32768z^4) + ...)
            z = nu / 2
            ratio = math.sqrt(z) * (1 - 1 / (8 * z) + 1 / (128 * z**2) + 5 / (1024 * z**3) - 21 / (32768 * z**4))
        f0 = ratio / math.sqrt(nu * math.pi)
        for p in (0.5 + 1e-12, 0.5 + 1e-9, 0.5 + 1e-6):
            s = (p - 0.5) / f0  # p - 1/2 is exact
            assert cov.t_quantile(p, nu) == approx(s * (1 + (nu + 1) / (6 * nu) * s * s), rel=1e-14), (p, nu)
            assert cov.t_quantile(1 - p, nu) == -cov.t_quantile(p, nu) if p != 0.5 + 1e-12 else True


def test_t_quantile_special_values():
    for nu in (1.0, 3.0, 1e5, math.inf):
        assert cov.t_quantile(0.5, nu) == 0.0
    for p in (0.6, 0.975, 0.9999):
        z = statistics.NormalDist().inv_cdf(p)
        assert cov.t_quantile(p, math.inf) == z and cov.t_quantile(1 - p, math.inf) == -z
        # nu = 1 (Cauchy) and nu = 2 in closed form, exactly
        assert cov.t_quantile(p, 1.0) == 1 / math.tan(math.pi * (1 - p))
        assert cov.t_quantile(p, 2.0) == (2 * p - 1) / math.sqrt(2 * p * (1 - p))
        assert cov.t_quantile(1 - p, 2.0) == -((2 * p - 1) / math.sqrt(2 * p * (1 - p)))


def test_t_quantile_is_the_inverse_of_the_closed_form_cdf():
    for nu in (3, 4, 5, 6, 11):
        for p in (0.51, 0.55, 0.6, 0.7, 0.749, 0.751, 0.8, 0.95, 0.99, 0.9999):
            t = cov.t_quantile(p, float(nu))
            # F(t) = p to a few ulp (t's rounding, the closed form's own rounding)
            assert closed_form_cdf(t, nu) == approx(p, rel=1e-15), (p, nu)


def test_t_quantile_converges_from_far_starting_points():
    # small nu: the Cornish-Fisher start is far off (t_0.999999(1.05) = 2e5 vs a start of 5e3): doubling and
    # bisection bring Newton back into its bracket
    for nu, p in ((1.05, 1 - 1e-6), (1.01, 0.9999), (1.5, 1 - 1e-10), (0.5, 0.99), (0.2, 0.9)):
        t = cov.t_quantile(p, nu)
        tail = cov.t_tail(t, nu)
        assert tail == approx(1 - p, rel=2e-12), (nu, p)
        assert t > 0


def test_t_quantile_below_one_degree_of_freedom_against_the_beta_function():
    # nu = 1/2: P(T > t) = I_{nu/(nu+t^2)}(1/4, 1/2) / 2; the x(1/4, 1/2) tail integral written as a sum in the test
    nu = 0.5
    t = cov.t_quantile(0.9, nu)
    x = nu / (nu + t * t)
    # I_x(a, 1/2) for small x: B(a, 1/2)^-1 sum_k (1/2)_k / k! x^(a+k) / (a + k), (1/2)_k rising factorial
    a = 0.25
    total, term = 0.0, 1.0
    for k in range(400):
        total += term * x ** (a + k) / (a + k)
        term *= (k + 0.5) / (k + 1)
    log_b = math.lgamma(a) + math.lgamma(0.5) - math.lgamma(a + 0.5)
    assert 0.5 * total / math.exp(log_b) == approx(0.1, rel=1e-13)


# --- coverage factors and Welch-Satterthwaite ---------------------------------------------------------------------

def test_coverage_factors_normal_and_student():
    z = statistics.NormalDist().inv_cdf(0.975)
    assert cov.coverage_factors(0.95, None) == z
    assert cov.coverage_factors(0.9, None) == statistics.NormalDist().inv_cdf(0.95)
    nu = np.array([[math.inf, 3.0, 0.25], [3.0, math.nan, 1.0], [100.0, -math.inf, 2.0]])
    k = cov.coverage_factors(0.95, nu)
    assert k.shape == (3, 3) and k.dtype == np.float64
    t3 = T_QUANTILE[3.0][5]
    expect = [[z, t3, 12.706204736174694], [t3, z, 12.706204736174694], [1.9839715185235518, z, 4.302652729749462]]
    assert k == approx(np.array(expect), rel=5e-14)  # nu < 1 counts as 1; NaN and -inf as the normal's
    assert k[0, 1] == k[1, 0]
    k0 = cov.coverage_factors(0.99, np.array([19.0]))
    assert k0.shape == (1,) and k0[0] == approx(2.8609346064649794, rel=1e-14)  # scipy, tests/test_metrology.py
    k1 = cov.coverage_factors(0.9, [1e6, 7.5])  # a list is taken as an array
    assert k1 == approx([1.64485515072204, 1.875747479211288], rel=1e-13)  # mpmath


def test_coverage_factors_reuses_nothing_between_different_nu():
    nu = np.array([3.0, 3.0 + 1e-9, 4.0, 3.0])
    k = cov.coverage_factors(0.95, nu)
    assert k[0] == k[3] and k[1] != k[0] and k[1] == approx(k[0], rel=1e-9)
    assert k[2] == approx(2.7764451051977934, rel=1e-14)


def test_welch_satterthwaite_over_the_last_axis():
    terms = np.array([[[0.25, 0.57, 0.82]], [[1.0, 0.0, 0.0]], [[0.0, 0.0, 0.0]]])  # (3, 1, 3)
    dof = np.array([9.0, 4.0, 14.0])
    nu = cov.welch_satterthwaite(terms, dof)
    u2 = 0.25**2 + 0.57**2 + 0.82**2
    assert nu.shape == (3, 1)
    assert nu[0, 0] == approx(u2**2 / (0.25**4 / 9 + 0.57**4 / 4 + 0.82**4 / 14), rel=1e-15)
    assert nu[1, 0] == approx(9.0, rel=1e-15)  # one input: its own degrees of freedom
    assert nu[2, 0] == math.inf
    assert cov.welch_satterthwaite(np.array([0.3, -0.4]), np.array([math.inf, math.inf])) == math.inf
    with warnings.catch_warnings(), np.errstate(all="warn"):  # inf / inf gives NaN, silently
        warnings.simplefilter("error")
        both = cov.welch_satterthwaite(np.array([[math.inf, 1.0], [0.0, 0.0]]), np.array([3.0, 3.0]))
    assert np.isnan(both[0]) and both[1] == math.inf
    assert cov.welch_satterthwaite(np.array([0.3, -0.4]), np.array([5.0, math.inf])) == approx(
        0.25**2 / (0.3**4 / 5), rel=1e-15)
