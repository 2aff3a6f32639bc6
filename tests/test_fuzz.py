"""Hostile inputs through every constructor, log_prob, transform and handler.

The only outcomes allowed: a correct (finite where it should be) value, or
one of the documented errors (ValueError, TypeError, ppl.errors.*). A NaN
where a number belongs, or any other exception, fails.
"""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

import ppl
import ppl.distributions as dist
from ppl import condition, log_joint, observe, plate, sample, seed, trace
from ppl.distributions import constraints
from ppl.distributions.transforms import biject_to
from ppl.errors import PPLError

DOCUMENTED = (ValueError, TypeError, PPLError)

hostile_scalars = hst.one_of(
    hst.floats(allow_nan=True, allow_infinity=True),
    hst.sampled_from([0.0, -0.0, 1e308, -1e308, 1e-308, np.nan, np.inf, -np.inf]),
    hst.integers(-10**6, 10**6),
)
hostile_arrays = hst.one_of(
    hostile_scalars,
    hst.builds(np.asarray, hst.lists(hostile_scalars, min_size=0, max_size=4)),
    hst.builds(lambda v, s: np.full(s, v), hostile_scalars, hst.sampled_from([(0,), (2, 3), (3, 1), (1, 2)])),
    hst.builds(lambda v: np.array(v, dtype=np.float32), hst.floats(-1e4, 1e4, width=32, allow_nan=False)),
    hst.sampled_from([np.zeros(0), np.ones(3, dtype=int), np.array([True, False]), "text", None]),
)

FAMILIES = {
    "Normal": lambda a, b: dist.Normal(a, b),
    "LogNormal": lambda a, b: dist.LogNormal(a, b),
    "HalfNormal": lambda a, b: dist.HalfNormal(b),
    "Exponential": lambda a, b: dist.Exponential(b),
    "Gamma": lambda a, b: dist.Gamma(a, b),
    "Beta": lambda a, b: dist.Beta(a, b),
    "Uniform": lambda a, b: dist.Uniform(a, b),
    "Laplace": lambda a, b: dist.Laplace(a, b),
    "StudentT": lambda a, b: dist.StudentT(b, a, b),
    "Cauchy": lambda a, b: dist.Cauchy(a, b),
    "Bernoulli": lambda a, b: dist.Bernoulli(logits=a),
    "BernoulliProbs": lambda a, b: dist.Bernoulli(probs=b),
    "Poisson": lambda a, b: dist.Poisson(b),
    "Binomial": lambda a, b: dist.Binomial(5, probs=b),
    "Categorical": lambda a, b: dist.Categorical(logits=a),
    "Dirichlet": lambda a, b: dist.Dirichlet(b),
    "MultivariateNormalDiag": lambda a, b: dist.MultivariateNormalDiag(a, b),
}

EXAMPLES_TRIED = {"count": 0}


def _is_bad_number(x):
    x = np.asarray(x)
    return np.issubdtype(x.dtype, np.floating) and np.any(np.isnan(x))


@pytest.mark.parametrize("family", sorted(FAMILIES))
@given(a=hostile_arrays, b=hostile_arrays, value=hostile_arrays)
@settings(max_examples=40)
def test_constructors_and_log_prob_give_values_or_documented_errors(family, a, b, value):
    EXAMPLES_TRIED["count"] += 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            d = FAMILIES[family](a, b)
        except DOCUMENTED:
            return
        # parameters were accepted: they must be valid numbers
        for name in d.arg_constraints:
            assert not _is_bad_number(getattr(d, name)), f"{family} accepted NaN {name}"
        try:
            lp = d.log_prob(value)
        except DOCUMENTED:
            return
        assert not _is_bad_number(lp), f"{family}.log_prob({value!r}) gave NaN"
        draw = d.sample(np.random.default_rng(0), (2,))
        assert np.shape(draw) == (2,) + d.batch_shape + d.event_shape


CONSTRAINTS = [constraints.real, constraints.positive, constraints.unit_interval, constraints.interval(-2.0, 3.0),
               constraints.simplex, constraints.lower_cholesky, constraints.nonnegative]


@pytest.mark.parametrize("constraint", CONSTRAINTS, ids=repr)
@given(x=hst.lists(hst.floats(-1e6, 1e6, allow_nan=False), min_size=3, max_size=3))
@settings(max_examples=40)
def test_transforms_land_in_support_for_huge_inputs(constraint, x):
    EXAMPLES_TRIED["count"] += 1
    t = biject_to(constraint)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y = t(np.array(x))
    if constraint is constraints.lower_cholesky:
        assert y.shape == (2, 2)
    assert not np.any(np.isnan(y))
    if np.all(np.abs(x) < 30):  # beyond that, exp/sigmoid saturate to the boundary in floating point
        assert np.all(constraint.check(y))


@given(name=hst.text(min_size=0, max_size=8), value=hostile_arrays)
@settings(max_examples=60)
def test_handlers_with_hostile_names_and_values(name, value):
    EXAMPLES_TRIED["count"] += 1

    def model():
        mu = sample("mu", dist.Normal(0.0, 1.0))
        with plate("data", 3):
            observe("x", dist.Normal(mu, 1.0), np.zeros(3))

    for handler in (lambda: trace(condition(model, {name: value})).get_trace(),
                    lambda: trace(seed(ppl.replace(model, {name: value}), 0)).get_trace().log_prob_sum(),
                    lambda: log_joint(model)({"mu": value})):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = handler()
        except DOCUMENTED:
            continue
        if isinstance(out, ppl.Trace):
            continue
        assert not _is_bad_number(out) or _is_bad_number(value)


def test_number_of_examples_is_reported():
    # Runs last in this module: the closing note quotes this count.
    print(f"\nfuzz examples tried: {EXAMPLES_TRIED['count']}")
    assert EXAMPLES_TRIED["count"] > 0
