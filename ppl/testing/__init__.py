"""Property-testing tools for users' own suites: strategies, exact oracles, assertions, handler laws.

Needs hypothesis (the ``test`` extra); ``import ppl`` does not import this module.

    from hypothesis import given
    from ppl import testing
    from ppl.infer import ADVI

    @given(testing.conjugate_models(kinds=["normal_normal"]))
    def test_advi_recovers_the_posterior(case):
        result = ADVI(case.model, "meanfield").run(2000, *case.args)
        testing.assert_posterior_close(result, case.posterior, tol_sd=0.2)
"""
from dataclasses import dataclass

import numpy as np
from scipy.special import betaln, gammaln
from hypothesis import strategies as hst

from .. import distributions as dist
from ..core import Handler, observe, plate, sample
from ..handlers import block, condition, log_joint, replace, seed, trace
from ..infer.elbo import Trace_ELBO

# ---------------------------------------------------------------- parameter strategies

real = hst.floats(-3.0, 3.0, allow_nan=False)
positive = hst.floats(0.2, 5.0, allow_nan=False)
probability = hst.floats(0.05, 0.95, allow_nan=False)

FAMILY_PARAMS = {
    "Normal": {"loc": real, "scale": positive},
    "LogNormal": {"loc": real, "scale": positive},
    "HalfNormal": {"scale": positive},
    "Exponential": {"rate": positive},
    "Gamma": {"concentration": positive, "rate": positive},
    "Beta": {"concentration1": positive, "concentration0": positive},
    "Laplace": {"loc": real, "scale": positive},
    "StudentT": {"df": positive, "loc": real, "scale": positive},
    "Bernoulli": {"probs": probability},
    "Poisson": {"rate": positive},
}


def distribution_params(family):
    """A strategy of keyword arguments for ``getattr(ppl.distributions, family)``."""
    if family not in FAMILY_PARAMS:
        raise ValueError(f"distribution_params: no strategy for {family!r}; known: {sorted(FAMILY_PARAMS)}")
    return hst.fixed_dictionaries(FAMILY_PARAMS[family])


def distributions(families=None):
    """A strategy of distribution objects over ``families`` (default: all with a parameter strategy)."""
    names = sorted(FAMILY_PARAMS) if families is None else list(families)
    return hst.sampled_from(names).flatmap(
        lambda name: distribution_params(name).map(lambda kw, n=name: getattr(dist, n)(**kw)))


# ---------------------------------------------------------------- conjugate models with exact answers


@dataclass
class ConjugateModel:
    """A model, its arguments (the data), the exact posterior per site, and the exact log evidence."""

    name: str
    model: object
    args: tuple
    posterior: dict
    log_evidence: float


def _multivariate_normal_logpdf(x, mean, cov):
    import scipy.stats  # on first use: it takes most of a second to import, and most users of this module
    # (the posteriordb loader) never need it

    return scipy.stats.multivariate_normal(mean, cov).logpdf(x)


def _normal_normal(draw):
    n = draw(hst.integers(1, 8))
    prior_loc, prior_scale, noise = draw(real), draw(positive), draw(positive)
    data = np.array(draw(hst.lists(hst.floats(-5, 5), min_size=n, max_size=n)))

    def model(data):
        mu = sample("mu", dist.Normal(prior_loc, prior_scale))
        with plate("data", len(data)):
            observe("x", dist.Normal(mu, noise), data)

    precision = 1 / prior_scale**2 + n / noise**2
    mean = (prior_loc / prior_scale**2 + data.sum() / noise**2) / precision
    cov = prior_scale**2 * np.ones((n, n)) + noise**2 * np.eye(n)
    evidence = _multivariate_normal_logpdf(data, np.full(n, prior_loc), cov)
    return ConjugateModel("normal_normal", model, (data,), {"mu": dist.Normal(mean, precision**-0.5)},
                          float(evidence))


def _beta_bernoulli(draw):
    n = draw(hst.integers(1, 12))
    a, b = draw(positive), draw(positive)
    data = np.array(draw(hst.lists(hst.integers(0, 1), min_size=n, max_size=n)), dtype=float)

    def model(data):
        p = sample("p", dist.Beta(a, b))
        with plate("data", len(data)):
            observe("x", dist.Bernoulli(probs=p), data)

    k = data.sum()
    evidence = betaln(a + k, b + n - k) - betaln(a, b)  # p(x) = B(a + k, b + n - k) / B(a, b)
    return ConjugateModel("beta_bernoulli", model, (data,), {"p": dist.Beta(a + k, b + n - k)}, float(evidence))


def _gamma_poisson(draw):
    n = draw(hst.integers(1, 8))
    alpha, beta = draw(positive), draw(positive)
    data = np.array(draw(hst.lists(hst.integers(0, 12), min_size=n, max_size=n)), dtype=float)

    def model(data):
        rate = sample("rate", dist.Gamma(alpha, beta))
        with plate("data", len(data)):
            observe("x", dist.Poisson(rate), data)

    s = data.sum()
    evidence = (alpha * np.log(beta) - gammaln(alpha) + gammaln(alpha + s) - (alpha + s) * np.log(beta + n)
                - gammaln(data + 1).sum())
    return ConjugateModel("gamma_poisson", model, (data,), {"rate": dist.Gamma(alpha + s, beta + n)},
                          float(evidence))


def _linear_regression(draw):
    n, d = draw(hst.integers(2, 10)), draw(hst.integers(1, 3))
    noise, prior_scale = draw(positive), draw(positive)
    seed_ = draw(hst.integers(0, 2**16))
    rng = np.random.default_rng(seed_)
    features = rng.normal(size=(n, d))
    targets = features @ rng.normal(size=d) + noise * rng.normal(size=n)

    def model(features, targets):
        beta = sample("beta", dist.Normal(np.zeros(d), prior_scale).to_event(1))
        with plate("data", len(targets)):
            observe("y", dist.Normal(np.sum(features * beta, -1), noise), targets)

    precision = np.eye(d) / prior_scale**2 + features.T @ features / noise**2
    cov = np.linalg.inv(precision)
    mean = cov @ features.T @ targets / noise**2
    marginal = prior_scale**2 * features @ features.T + noise**2 * np.eye(n)
    evidence = _multivariate_normal_logpdf(targets, np.zeros(n), marginal)
    return ConjugateModel("linear_regression", model, (features, targets),
                          {"beta": dist.MultivariateNormal(mean, covariance_matrix=cov)}, float(evidence))


CONJUGATE = {"normal_normal": _normal_normal, "beta_bernoulli": _beta_bernoulli, "gamma_poisson": _gamma_poisson,
             "linear_regression": _linear_regression}


def conjugate_models(kinds=None):
    """A strategy of ``ConjugateModel``: random data for models whose posterior and evidence are known."""
    names = sorted(CONJUGATE) if kinds is None else list(kinds)
    unknown = set(names) - set(CONJUGATE)
    if unknown:
        raise ValueError(f"conjugate_models: unknown kinds {sorted(unknown)}; known: {sorted(CONJUGATE)}")
    return hst.one_of([hst.composite(lambda draw, f=CONJUGATE[name]: f(draw))() for name in names])


# ---------------------------------------------------------------- random small models


def random_models(max_sites=5):
    """A strategy of small model functions: chains and trees of sites over several families, with a plate.

    Each latent site's parameters depend on an earlier site (a tree); the
    last sites are observed inside a plate. The model takes no arguments.
    """

    @hst.composite
    def build(draw):
        num_latent = draw(hst.integers(1, max_sites))
        kinds = draw(hst.lists(hst.sampled_from(["normal", "positive", "unit"]), min_size=num_latent,
                               max_size=num_latent))
        parents = [None] + [draw(hst.integers(0, i - 1)) for i in range(1, num_latent)]
        obs_kind = draw(hst.sampled_from(["normal", "bernoulli", "poisson"]))
        size = draw(hst.integers(1, 4))
        data = np.array(draw(hst.lists(hst.integers(0, 3), min_size=size, max_size=size)), dtype=float)
        if obs_kind == "bernoulli":
            data = np.minimum(data, 1.0)

        def model():
            values = []
            for i, (kind, parent) in enumerate(zip(kinds, parents)):
                centre = 0.0 if parent is None else np.tanh(values[parent])
                if kind == "normal":
                    fn = dist.Normal(centre, 1.0)
                elif kind == "positive":
                    fn = dist.LogNormal(centre, 0.5)
                else:
                    fn = dist.Beta(1.0 + np.exp(centre), 2.0)
                values.append(sample(f"z{i}", fn))
            driver = np.tanh(values[-1])
            with plate("data", size):
                if obs_kind == "normal":
                    observe("x", dist.Normal(driver, 1.0), data)
                elif obs_kind == "bernoulli":
                    observe("x", dist.Bernoulli(logits=driver), data)
                else:
                    observe("x", dist.Poisson(np.exp(driver)), data)

        model.__name__ = f"random_model_{num_latent}_{obs_kind}"
        return model

    return build()


# ---------------------------------------------------------------- assertions


def _summary(result, name):
    """(mean, sd) of ``name`` from an ADVI/MAP-style result or a dict of posterior draws."""
    if isinstance(result, dict):
        draws = np.asarray(result[name])
        return draws.mean(0), draws.std(0)
    return np.asarray(result.mean[name]), np.asarray(result.std[name])


def assert_posterior_close(result, exact, tol_sd=0.2, sd_rtol=None):
    """Each site's posterior mean within ``tol_sd`` exact posterior standard deviations of the exact mean.

    ``exact`` maps site -> a distribution (its ``mean`` and ``variance``);
    ``sd_rtol`` also bounds the relative error of the standard deviations.
    """
    for name, truth in exact.items():
        mean, sd = _summary(result, name)
        exact_mean, exact_sd = np.asarray(truth.mean), np.sqrt(np.asarray(truth.variance))
        error = np.abs(mean - exact_mean) / exact_sd
        if np.any(error > tol_sd):
            raise AssertionError(f"site {name!r}: posterior mean {mean} is {np.max(error):.3g} exact sds from "
                                 f"{exact_mean} (tolerance {tol_sd})")
        if sd_rtol is not None and np.any(np.abs(sd / exact_sd - 1) > sd_rtol):
            raise AssertionError(f"site {name!r}: posterior sd {sd} against exact {exact_sd} "
                                 f"(relative tolerance {sd_rtol})")


def assert_elbo_bound(model, guide, params, exact_log_evidence, *args, num_particles=2000, rng_seed=0,
                      num_stderr=4.0, **kwargs):
    """ELBO <= log p(x): fails when the estimate exceeds the evidence by more than ``num_stderr`` standard errors."""
    terms = np.asarray(Trace_ELBO(num_particles).elbo_particles(rng_seed, params, model, guide, *args, **kwargs))
    elbo, stderr = terms.mean(), terms.std(ddof=1) / np.sqrt(len(terms)) if len(terms) > 1 else 0.0
    if elbo > exact_log_evidence + num_stderr * stderr + 1e-9:
        raise AssertionError(f"ELBO {elbo:.6g} (stderr {stderr:.3g}) exceeds the exact log evidence "
                             f"{exact_log_evidence:.6g}")
    return elbo


def check_log_prob(distribution, scipy_distribution, values, rtol=1e-7, atol=1e-9):
    """``distribution.log_prob`` against scipy's logpdf (or logpmf) at ``values``."""
    # scipy's frozen discrete laws have logpmf and no logpdf
    reference = getattr(scipy_distribution, "logpdf", None) or scipy_distribution.logpmf
    expected = reference(values)
    ours = np.asarray(distribution.log_prob(values))
    if not np.allclose(ours, expected, rtol=rtol, atol=atol):
        worst = np.argmax(np.abs(ours - expected))
        raise AssertionError(f"{type(distribution).__name__}.log_prob differs from scipy: {np.ravel(ours)[worst]} "
                             f"against {np.ravel(expected)[worst]}")


def finite_difference(f, x, eps=1e-6):
    """The gradient of the scalar function ``f`` at ``x`` by central differences, one coordinate at a
    time: the independent number an autograd gradient is checked against."""
    x = np.array(x, dtype=float)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = eps
        grad[i] = (f(x + step) - f(x - step)) / (2 * eps)
    return grad


def assert_gradients_match(f, args, rtol=1e-5, atol=1e-7):
    """autograd's gradient of the scalar ``f(*args)`` w.r.t. each argument equals central finite differences."""
    import autograd

    for i in range(len(args)):
        def partial(x, i=i):
            return f(*args[:i], x, *args[i + 1:])

        np.testing.assert_allclose(autograd.grad(partial)(args[i]), finite_difference(partial, args[i]),
                                   rtol=rtol, atol=atol, err_msg=f"argument {i}")


# ---------------------------------------------------------------- handler laws


def _site_view(tr):
    return {n: (s.type, s.is_observed, np.asarray(s.value).tolist() if s.type != "param" else None)
            for n, s in tr.items() if s.type in ("sample", "param", "deterministic", "plate")}


def check_handler_laws(model, *args, rng_seed=0, **kwargs):
    """Check the handler laws on a user's model; an ``AssertionError`` names the law that fails.

    log_joint equals the trace's log_prob_sum; condition marks observed with the
    given values; the same seed gives the same trace; a handler that only
    forwards leaves the log joint unchanged; trace commutes with condition
    and replace; block and trace are idempotent.
    """
    base = trace(seed(model, rng_seed)).get_trace(*args, **kwargs)
    latent = {n: s.value for n, s in base.items() if s.is_latent}
    total = float(base.log_prob_sum())

    def law(ok, message):
        if not ok:
            raise AssertionError(f"handler law broken for {getattr(model, '__name__', model)!r}: {message}")

    law(np.isclose(float(log_joint(model)(latent, *args, **kwargs)), total, rtol=1e-10, atol=1e-10),
        "log_joint differs from trace(...).log_prob_sum()")
    conditioned = trace(condition(model, latent)).get_trace(*args, **kwargs)
    law(all(conditioned[n].is_observed and np.array_equal(conditioned[n].value, v) for n, v in latent.items()),
        "condition does not mark the sites observed with the given values")
    again = trace(seed(model, rng_seed)).get_trace(*args, **kwargs)
    law(_site_view(again) == _site_view(base), "the same seed gives a different trace")
    with Handler():
        forwarded = float(log_joint(model)(latent, *args, **kwargs))
    law(np.isclose(forwarded, total, rtol=1e-10, atol=1e-10), "a handler that only forwards changes the log joint")
    for wrap, label in ((condition, "condition"), (replace, "replace")):
        with trace() as outside:
            seed(wrap(model, latent), rng_seed)(*args, **kwargs)
        with wrap(data=latent):
            with trace() as inside:
                seed(model, rng_seed)(*args, **kwargs)
        law(_site_view(outside) == _site_view(inside), f"trace does not commute with {label}")
    twice = trace(trace(seed(model, rng_seed))).get_trace(*args, **kwargs)
    law(_site_view(twice) == _site_view(base), "trace is not idempotent")
    names = list(latent)[:1]
    once = trace(block(seed(model, rng_seed), hide=names)).get_trace(*args, **kwargs)
    double = trace(block(block(seed(model, rng_seed), hide=names), hide=names)).get_trace(*args, **kwargs)
    law(_site_view(once) == _site_view(double) and not set(names) & set(once), "block is not idempotent")
