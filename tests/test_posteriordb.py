"""posteriordb: the loader, each port's exactness against its Stan program, compare, and Laplace on the regressions.

Each port's log joint is checked against an independent evaluation of the
Stan model block written here with scipy.stats and NumPy. Stan drops
constants (``~`` statements, the normalisers of truncated priors), so the
test compares differences between reference draws, where those cancel.
``log_joint`` is the density of the model's own parameters (no Jacobian),
which is the Stan model block's target without Jacobians.
"""
import os
import time

import numpy as np
import pytest
import scipy.stats as st
from scipy.linalg import solve_triangular
from scipy.special import logsumexp

from ppl import log_joint
from ppl.testing import posteriordb
from ppl.testing.posteriordb import Comparison, PosteriorNotFoundError, compare, load, parse_stan_name

NAMES = posteriordb.names()
DRAWS = [(0, 0), (1, 17), (3, 250), (6, 511), (9, 999)]  # (chain, draw): five reference draws


@pytest.fixture(scope="module")
def posteriors():
    return {name: load(name) for name in NAMES}


# ---------------------------------------------------------------- loader


def test_names_are_the_26_shared_posteriors():
    on_disk = sorted(f[:-5] for f in os.listdir(os.path.join(os.environ["PPL_DATA_DIR"], "posteriordb"))
                     if f.endswith(".json"))
    assert NAMES == on_disk and len(NAMES) == 26


def test_load_reads_data_reference_and_draws(posteriors):
    post = posteriors["kidiq-kidscore_momiq"]
    assert post.name == "kidiq-kidscore_momiq" and "kid_score ~ normal" in post.stan_code
    assert post.data["N"] == 434 and post.data["kid_score"].shape == (434,)
    assert post.data["kid_score"].dtype.kind == "i" and post.data["mom_iq"].dtype == float  # ints stay ints
    assert post.dimensions == {"beta": 2, "sigma": 1}
    assert set(post.draws) == {"beta[1]", "beta[2]", "sigma"} and post.draws["beta[1]"].shape == (10, 1000)
    ref = post.reference["beta[1]"]
    assert ref["mean"] == pytest.approx(post.draws["beta[1]"].mean(), rel=1e-10)
    assert ref["sd"] == pytest.approx(post.draws["beta[1]"].std(ddof=1), rel=1e-8)
    assert ref["q05"] < ref["q50"] < ref["q95"] and ref["r_hat"] < 1.01
    site = post.site_draws()
    assert site["beta"].shape == (10, 1000, 2) and site["sigma"].shape == (10, 1000)
    assert np.array_equal(site["beta"][..., 1], post.draws["beta[2]"])
    assert post.values_at(3, 7)["beta"][0] == post.draws["beta[1]"][3, 7]


def test_load_missing_names_every_folder_searched(tmp_path):
    with pytest.raises(PosteriorNotFoundError) as info:
        load("no-such-posterior", data_dir=tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and os.path.join(os.environ["PPL_DATA_DIR"], "posteriordb") in message
    (tmp_path / "x-y.json").write_text('{"name": "x-y"}')
    with pytest.raises(PosteriorNotFoundError, match="draws"):
        load("x-y", data_dir=tmp_path)


def test_load_prefers_data_dir(tmp_path, posteriors):
    src = os.path.abspath(os.path.join(os.environ["PPL_DATA_DIR"], "posteriordb"))  # CI gives a relative path
    (tmp_path / "draws").mkdir()
    text = open(os.path.join(src, "kidiq-kidscore_momiq.json")).read().replace('"kidiq-kidscore_momiq"', '"copy"', 1)
    (tmp_path / "kidiq-kidscore_momiq.json").write_text(text)
    os.symlink(os.path.join(src, "draws", "kidiq-kidscore_momiq.npz"), tmp_path / "draws" / "kidiq-kidscore_momiq.npz")
    assert load("kidiq-kidscore_momiq", data_dir=tmp_path).name == "copy"


def test_stan_names_map_to_sites():
    assert parse_stan_name("beta[1]") == ("beta", (0,))
    assert parse_stan_name("sigma") == ("sigma", ())
    assert parse_stan_name("L[2,3]") == ("L", (1, 2))
    assert posteriordb.stan_name("L", (1, 2)) == "L[2,3]"
    with pytest.raises(ValueError, match="beta\\[\\]"):
        parse_stan_name("beta[]")


def test_model_returns_the_port_with_its_data():
    fn, args, kwargs = posteriordb.model("kilpisjarvi_mod-kilpisjarvi")
    assert fn is posteriordb.kilpisjarvi and args == ()
    assert set(kwargs) == {"x", "y", "pmualpha", "psalpha", "pmubeta", "psbeta"} and kwargs["x"].shape == (62,)
    with pytest.raises(KeyError, match="no port named 'nope'"):
        posteriordb.model("nope")


# ---------------------------------------------------------------- independent Stan targets (scipy)

norm, cauchy, t_dist = st.norm.logpdf, st.cauchy.logpdf, st.t.logpdf


def _columns(beta, *xs):
    return beta[0] + sum(b * x for b, x in zip(beta[1:], xs))


def _regression_target(y, design, p, sigma_prior=None):
    lp = np.sum(norm(y, _columns(p["beta"], *design), p["sigma"]))
    return lp + (0.0 if sigma_prior is None else sigma_prior(p["sigma"]))


def _nes(d, p):
    age = d["age_discrete"]
    design = (d["real_ideo"], d["race_adj"], age == 2, age == 3, age == 4, d["educ1"], d["gender"], d["income"])
    return _regression_target(d["partyid7"], design, p)


def _garch(d, p):
    y, sigma = d["y"], [float(d["sigma1"])]
    for t in range(1, len(y)):
        sigma.append(np.sqrt(p["alpha0"] + p["alpha1"] * (y[t - 1] - p["mu"]) ** 2 + p["beta1"] * sigma[-1] ** 2))
    return np.sum(norm(y, p["mu"], np.array(sigma)))


def _hmm_target(d, p):
    """The forward algorithm in probability space, normalised each step (another route than the port's)."""
    y, mu = d["y"], p["mu"]
    transition = np.stack([p["theta1"], p["theta2"]])
    emission = st.norm.pdf(y[:, None], mu, 1.0)
    total = np.log(emission[0].sum())
    alpha = emission[0] / emission[0].sum()
    for t in range(1, len(y)):
        alpha = (alpha @ transition) * emission[t]
        total += np.log(alpha.sum())
        alpha = alpha / alpha.sum()
    return norm(mu[0], 3, 1) + norm(mu[1], 10, 1) + total


def _gp(d, p):
    x = d["x"].astype(float)
    cov = p["alpha"] ** 2 * np.exp(-0.5 * (x[:, None] - x[None, :]) ** 2 / p["rho"] ** 2) + 1e-10 * np.eye(len(x))
    f = np.linalg.cholesky(cov) @ p["f_tilde"]
    return (st.gamma.logpdf(p["rho"], 25, scale=1 / 4) + norm(p["alpha"], 0, 2) + np.sum(norm(p["f_tilde"]))
            + np.sum(st.poisson.logpmf(d["k"], np.exp(f))))


def _diamonds(d, p):
    X = d["X"].astype(float)
    Xc = X[:, 1:] - X[:, 1:].mean(0)
    return (np.sum(norm(p["b"], 0, 1)) + t_dist(p["Intercept"], 3, 8, 10)
            + t_dist(p["sigma"], 3, 0, 10) - st.t.logsf(0, 3, 0, 10)
            + np.sum(norm(d["Y"], p["Intercept"] + Xc @ p["b"], p["sigma"])))


def _ark(d, p):
    y, K = d["y"], int(d["K"])
    lp = norm(p["alpha"], 0, 10) + np.sum(norm(p["beta"], 0, 10)) + cauchy(p["sigma"], 0, 2.5)
    for t in range(K, len(y)):  # Stan's loop, literally
        mu = p["alpha"] + sum(p["beta"][k] * y[t - k - 1] for k in range(K))
        lp += norm(y[t], mu, p["sigma"])
    return lp


def _mix(d, p):
    mu, sigma, theta = p["mu"], p["sigma"], p["theta"]
    dens = theta * st.norm.pdf(d["y"], mu[0], sigma[0]) + (1 - theta) * st.norm.pdf(d["y"], mu[1], sigma[1])
    return np.sum(norm(sigma, 0, 2)) + np.sum(norm(mu, 0, 2)) + st.beta.logpdf(theta, 5, 5) + np.sum(np.log(dens))


def _log(*xs):
    return tuple(np.log(x) for x in xs)


STAN = {
    "arK-arK": _ark,
    "diamonds-diamonds": _diamonds,
    "earnings-earn_height": lambda d, p: _regression_target(d["earn"], (d["height"],), p),
    "earnings-log10earn_height": lambda d, p: _regression_target(np.log10(d["earn"]), (d["height"],), p),
    "earnings-logearn_height": lambda d, p: _regression_target(np.log(d["earn"]), (d["height"],), p),
    "earnings-logearn_interaction": lambda d, p: _regression_target(
        np.log(d["earn"]), (d["height"], d["male"], d["height"] * d["male"]), p),
    "eight_schools-eight_schools_noncentered": lambda d, p: (
        np.sum(norm(p["theta_trans"])) + np.sum(norm(d["y"], p["theta_trans"] * p["tau"] + p["mu"], d["sigma"]))
        + norm(p["mu"], 0, 5) + cauchy(p["tau"], 0, 5)),
    "garch-garch11": _garch,
    "gp_pois_regr-gp_pois_regr": _gp,
    "hmm_example-hmm_example": _hmm_target,
    "kidiq-kidscore_interaction": lambda d, p: _regression_target(
        d["kid_score"], (d["mom_hs"], d["mom_iq"], d["mom_hs"] * d["mom_iq"]), p, lambda s: cauchy(s, 0, 2.5)),
    "kidiq-kidscore_momhs": lambda d, p: _regression_target(
        d["kid_score"], (d["mom_hs"],), p, lambda s: cauchy(s, 0, 2.5)),
    "kidiq-kidscore_momiq": lambda d, p: _regression_target(
        d["kid_score"], (d["mom_iq"],), p, lambda s: cauchy(s, 0, 2.5)),
    "kidiq_with_mom_work-kidscore_interaction_c": lambda d, p: _regression_target(
        d["kid_score"], (d["mom_hs"] - d["mom_hs"].mean(), d["mom_iq"] - d["mom_iq"].mean(),
                         (d["mom_hs"] - d["mom_hs"].mean()) * (d["mom_iq"] - d["mom_iq"].mean())), p),
    "kidiq_with_mom_work-kidscore_mom_work": lambda d, p: _regression_target(
        d["kid_score"], tuple(d["mom_work"] == k for k in (2, 3, 4)), p),
    "kilpisjarvi_mod-kilpisjarvi": lambda d, p: (
        norm(p["alpha"], d["pmualpha"], d["psalpha"]) + norm(p["beta"], d["pmubeta"], d["psbeta"])
        + np.sum(norm(d["y"], p["alpha"] + p["beta"] * d["x"], p["sigma"]))),
    "low_dim_gauss_mix-low_dim_gauss_mix": _mix,
    "mesquite-logmesquite": lambda d, p: _regression_target(
        np.log(d["weight"]), _log(d["diam1"], d["diam2"], d["canopy_height"], d["total_height"], d["density"])
        + (d["group"],), p),
    "mesquite-logmesquite_logva": lambda d, p: _regression_target(
        np.log(d["weight"]), _log(d["diam1"] * d["diam2"] * d["canopy_height"], d["diam1"] * d["diam2"])
        + (d["group"],), p),
    "mesquite-logmesquite_logvolume": lambda d, p: _regression_target(
        np.log(d["weight"]), _log(d["diam1"] * d["diam2"] * d["canopy_height"]), p),
    "mesquite-mesquite": lambda d, p: _regression_target(
        d["weight"], (d["diam1"], d["diam2"], d["canopy_height"], d["total_height"], d["density"], d["group"]), p),
    "nes1972-nes": _nes, "nes1980-nes": _nes, "nes1992-nes": _nes, "nes2000-nes": _nes,
    "sblrc-blr": lambda d, p: (np.sum(norm(p["beta"], 0, 10)) + norm(p["sigma"], 0, 10)
                               + np.sum(norm(d["y"], d["X"] @ p["beta"], p["sigma"]))),
}


def _inputs(name, post, chain, draw):
    """The port's sample-site values at one reference draw; transformed parameters are solved back."""
    values = post.values_at(chain, draw)
    if name.startswith("eight_schools"):
        theta = values.pop("theta")
        values["theta_trans"] = (theta - values["mu"]) / values["tau"]
    if name.startswith("gp_pois_regr"):
        x = post.data["x"].astype(float)
        cov = (values["alpha"] ** 2 * np.exp(-0.5 * (x[:, None] - x[None, :]) ** 2 / values["rho"] ** 2)
               + 1e-10 * np.eye(len(x)))
        values["f_tilde"] = solve_triangular(np.linalg.cholesky(cov), values.pop("f"), lower=True)
    return values


def test_every_posterior_has_an_independent_target():
    assert sorted(STAN) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_port_matches_the_stan_program(name, posteriors):
    post = posteriors[name]
    fn, args, kwargs = posteriordb.model(name)
    joint = log_joint(fn)
    ours, stan = [], []
    for chain, draw in DRAWS:
        values = _inputs(name, post, chain, draw)
        ours.append(float(joint(values, *args, **kwargs)))
        stan.append(float(STAN[name](post.data, values)))
    ours, stan = np.array(ours), np.array(stan)
    assert np.all(np.isfinite(ours)), f"{name}: log_joint {ours}"
    # differences cancel Stan's dropped constants; rounding in a sum of size |lp| allows ~1e-13 |lp|
    scale = np.max(np.abs(stan))
    np.testing.assert_allclose(ours[1:] - ours[0], stan[1:] - stan[0], rtol=1e-8, atol=1e-12 * scale)
    assert np.ptp(stan) > 1e-3  # the draws differ: the check has something to see


# ---------------------------------------------------------------- compare


class _Result:
    def __init__(self, mean, std=None):
        self.mean, self.std = mean, std


def _shifted(post, shift, ratio):
    """A result whose every scalar sits ``shift`` reference sds above the reference mean, sds times ``ratio``."""
    sites = post.site_draws()
    mean = {s: np.zeros(v.shape[2:]) for s, v in sites.items()}
    std = {s: np.zeros(v.shape[2:]) for s, v in sites.items()}
    for name, ref in post.reference.items():
        site, index = parse_stan_name(name)
        mean[site][index] = ref["mean"] + shift * ref["sd"]
        std[site][index] = ratio * ref["sd"]
    return _Result(mean, std)


def test_compare_a_known_shift_gives_the_known_z(posteriors):
    post = posteriors["kidiq-kidscore_interaction"]
    comparison = compare(_shifted(post, -0.25, 1.2), post)
    assert isinstance(comparison, Comparison) and [r.name for r in comparison.rows] == list(post.reference)
    assert np.allclose([r.z for r in comparison.rows], -0.25) and np.allclose([r.sd_ratio for r in comparison.rows], 1.2)
    assert comparison.worst_z == pytest.approx(0.25) and comparison.worst_sd_ratio == pytest.approx(1.2)
    assert comparison.ok(z_tol=0.3, sd_bounds=(0.7, 1.3))
    assert not comparison.ok(z_tol=0.2, sd_bounds=(0.7, 1.3))
    assert not comparison.ok(z_tol=0.3, sd_bounds=(0.9, 1.1))
    assert comparison.ok(z_tol=0.3, sd_bounds=None)
    text = str(comparison)
    assert "beta[4]" in text and "sigma" in text and "-0.250" in text and "1.200" in text


def test_compare_one_scalar_off(posteriors):
    post = posteriors["kidiq-kidscore_momiq"]
    result = _shifted(post, 0.0, 1.0)
    ref = post.reference["beta[2]"]
    result.mean["beta"][1] = ref["mean"] + 3.0 * ref["sd"]
    result.std["sigma"] = 0.5 * post.reference["sigma"]["sd"]
    result.std["beta"][0] = 1.9 * post.reference["beta[1]"]["sd"]
    comparison = compare(result, post)
    assert comparison.worst_z == pytest.approx(3.0)
    assert comparison.worst_sd_ratio == pytest.approx(0.5)  # |log 0.5| > |log 1.9|


def test_compare_a_point_estimate_and_partial_results(posteriors):
    post = posteriors["eight_schools-eight_schools_noncentered"]

    class Point:
        values = {"mu": post.reference["mu"]["mean"] + post.reference["mu"]["sd"], "theta_trans": np.zeros(8)}

    comparison = compare(Point(), post)
    assert [r.name for r in comparison.rows] == ["mu"] and comparison.worst_z == pytest.approx(1.0)
    assert not comparison.has_sd and np.isnan(comparison.worst_sd_ratio)
    assert comparison.ok(z_tol=1.01) and not comparison.ok(z_tol=0.99)  # judged by z alone
    assert "tau" in comparison.missing and "theta[8]" in comparison.missing and "theta[8]" in comparison.table()
    with pytest.raises(ValueError, match="none of the reference parameters"):
        compare(_Result({"theta_trans": np.zeros(8)}, {}), post)
    with pytest.raises(TypeError, match="neither"):
        compare(object(), post)


# ---------------------------------------------------------------- Laplace on the regressions (CI's fast subset)


def _coefficients(comparison):
    """The regression coefficients' rows: everything but the noise scale."""
    return [r for r in comparison.rows if not r.name.startswith("sigma")]


_NARROW = ("a genuine limit of Laplace, not of the mode search: 46 points, 7 coefficients, flat priors, so the marginal of "
           "beta is Student-t with n - p dof and the Laplace sd is sqrt((n - p - 2) / (n - 1)) = 0.91 of it by theory "
           "(0.88-0.89 measured), below the 0.9 bound")
_KNOWN = {"mesquite-logmesquite": _NARROW, "mesquite-mesquite": _NARROW}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=_KNOWN[n]))
                                  if n in _KNOWN else n for n in posteriordb.REGRESSIONS])
def test_laplace_is_nearly_exact_on_regressions(name, posteriors):
    from ppl.infer import Laplace

    fn, args, kwargs = posteriordb.model(name)
    start = time.perf_counter()
    result = Laplace(fn).run(*args, rng_seed=0, **kwargs)
    seconds = time.perf_counter() - start
    rows = _coefficients(compare(result, posteriors[name]))
    worst = max(rows, key=lambda r: abs(r.z))
    assert abs(worst.z) <= 0.1, f"{name}: {worst.name} is {worst.z:.3f} reference sds off"
    for r in rows:
        assert 0.9 <= r.sd_ratio <= 1.1, f"{name}: {r.name} sd ratio {r.sd_ratio:.3f}"
    assert seconds < 10, f"{name}: Laplace took {seconds:.1f} s"
