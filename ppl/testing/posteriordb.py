"""Reference posteriors from posteriordb: the data, Stan's answers, ``ppl`` ports, and a comparison.

posteriordb (the Stan developers' database) pairs each Stan program and data
set with 10 000 reference draws from long Stan NUTS runs. ``load(name)`` reads
one posterior from ``$PPL_DATA_DIR/posteriordb``; ``model(name)`` returns its
port, a ``ppl`` model function that is a line-by-line translation of the Stan
program (the same parameter names and shapes, Stan's ``beta[1]`` being entry 0
of site ``beta``); ``compare(result, posterior)`` measures any result with
``.mean`` and ``.std`` against the reference, in reference standard deviations.

    from ppl.infer import Laplace
    from ppl.testing import posteriordb

    fn, args, kwargs = posteriordb.model("kidiq-kidscore_momiq")
    result = Laplace(fn).run(*args, **kwargs)
    print(posteriordb.compare(result, posteriordb.load("kidiq-kidscore_momiq")))

Stan's conventions, and how the ports keep them:

- a parameter with no prior has a flat (improper) prior on its declared
  support: ``ImproperUniform(support, batch_shape, event_shape)``;
- a ``~`` statement on a bounded parameter is the density truncated to the
  bounds; with constant bounds the normaliser is a constant, so
  ``cauchy(0, 2.5)`` on ``real<lower=0>`` is ``HalfCauchy(2.5)`` and
  ``normal(0, s)`` there is ``HalfNormal(s)``;
- a prior on a constrained vector (``ordered``, ``positive_ordered``) is the
  flat law on that support plus a ``factor`` holding the prior's density.
"""
import inspect
import json
import math
import os
import re
from dataclasses import dataclass, field

import autograd.numpy as anp
import numpy as np

from .. import distributions as dist
from ..core import deterministic, factor, observe, sample
from ..distributions import constraints

# ---------------------------------------------------------------- loading


class PosteriorNotFoundError(FileNotFoundError):
    """The files of a posteriordb posterior are in none of the folders searched."""


def search_dirs(data_dir=None):
    """The folders ``load`` looks in, in order: ``data_dir``, then ``$PPL_DATA_DIR/posteriordb``."""
    dirs = [] if data_dir is None else [os.fspath(data_dir)]
    if os.environ.get("PPL_DATA_DIR"):
        dirs.append(os.path.join(os.environ["PPL_DATA_DIR"], "posteriordb"))
    return dirs


_STAN_NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[([0-9, ]+)\])?$")


def parse_stan_name(stan_name):
    """Stan's scalar name to (site, NumPy index): ``"beta[1]"`` -> ``("beta", (0,))``, ``"sigma"`` -> ``("sigma", ())``.

    >>> parse_stan_name("x[2,3]")
    ('x', (1, 2))
    """
    match = _STAN_NAME.match(stan_name)
    if match is None:
        raise ValueError(f"parse_stan_name: {stan_name!r} is not a Stan name such as 'beta' or 'beta[1]'")
    site, index = match.groups()
    return site, () if index is None else tuple(int(i) - 1 for i in index.split(","))


def stan_name(site, index=()):
    """The inverse of ``parse_stan_name``: ``stan_name("beta", (0,))`` is ``"beta[1]"``."""
    return site if not index else f"{site}[{','.join(str(i + 1) for i in index)}]"


def _as_array(value):
    """JSON data to NumPy: integers stay integers (Stan's ``int``), everything else float64."""
    arr = np.asarray(value)
    return arr if arr.dtype.kind in "iub" else arr.astype(float)


@dataclass
class Posterior:
    """One posteriordb posterior.

    ``data``: the Stan data, name -> NumPy array; ``reference``: Stan name ->
    {mean, sd, q05, q25, q50, q75, q95, ess_bulk, r_hat}; ``draws``: Stan name
    -> the reference draws, shape (chains, draws); ``dimensions``: parameter
    -> its length.
    """

    name: str
    data: dict
    stan_code: str
    reference: dict
    draws: dict = field(repr=False)
    dimensions: dict
    reference_method: dict = field(default_factory=dict)
    path: str = ""

    def site_draws(self):
        """The draws per site, stacked as the model sees them: site -> (chains, draws, *shape)."""
        out = {}
        for site, entries in _group_by_site(self.draws).items():
            shape = tuple(max(index[d] for index, _ in entries) + 1 for d in range(len(entries[0][0])))
            first = entries[0][1]
            arr = np.empty(first.shape + shape)
            for index, value in entries:
                arr[(Ellipsis,) + index] = value
            out[site] = arr
        return out

    def values_at(self, chain, draw):
        """Site values of one reference draw: site -> array of the parameter's shape."""
        return {site: arr[chain, draw] for site, arr in self.site_draws().items()}


def _group_by_site(named):
    groups = {}
    for name, value in named.items():
        site, index = parse_stan_name(name)
        groups.setdefault(site, []).append((index, value))
    return groups


def names():
    """The names of the posteriors with a port, sorted (all 26 of the shared set)."""
    return sorted(PORTS)


def load(name, data_dir=None):
    """Read posterior ``name`` (``NAME.json`` and ``draws/NAME.npz``) from the first folder that has it.

    Looks in ``data_dir``, then ``$PPL_DATA_DIR/posteriordb``; raises
    ``PosteriorNotFoundError`` naming every folder searched when none has it.
    """
    dirs = search_dirs(data_dir)
    for folder in dirs:
        path = os.path.join(folder, f"{name}.json")
        if os.path.isfile(path):
            break
    else:
        known = f" Known names: {', '.join(names())}." if name not in PORTS else ""
        where = f"in the folders searched: {', '.join(dirs)}" if dirs else "(no folder to search: data_dir is None"\
            " and PPL_DATA_DIR is unset)"
        raise PosteriorNotFoundError(f"posteriordb: {name}.json not found {where}. Pass data_dir= or set "
                                     f"PPL_DATA_DIR to the folder that holds posteriordb/.{known}")
    with open(path) as fh:
        raw = json.load(fh)
    draws_path = os.path.join(folder, "draws", f"{name}.npz")
    if not os.path.isfile(draws_path):
        raise PosteriorNotFoundError(f"posteriordb: {name}.json is in {folder} but its draws {draws_path} are not")
    with np.load(draws_path) as npz:
        draws = {key: npz[key] for key in npz.files}
    return Posterior(raw["name"], {k: _as_array(v) for k, v in raw["data"].items()}, raw["stan_code"],
                     raw["reference"], draws, raw["dimensions"], raw.get("reference_method", {}), path)


def model(name):
    """The port of posterior ``name`` with its data: ``(model_fn, args, kwargs)``, ready for any engine.

    The data enter as keyword arguments named as in the Stan program
    (only those the port reads).
    """
    if name not in PORTS:
        raise KeyError(f"posteriordb.model: no port named {name!r}; known: {', '.join(names())}")
    fn = PORTS[name]
    data = load(name).data
    kwargs = {arg: data[arg] for arg in inspect.signature(fn).parameters}
    return fn, (), kwargs


# ---------------------------------------------------------------- comparison


@dataclass
class Row:
    """One scalar of one parameter: the result against the reference."""

    name: str
    mean: float
    sd: float
    ref_mean: float
    ref_sd: float

    @property
    def z(self):
        return (self.mean - self.ref_mean) / self.ref_sd

    @property
    def sd_ratio(self):
        return self.sd / self.ref_sd


@dataclass
class Comparison:
    """A result against a reference posterior, scalar by scalar.

    ``z = (mean - reference mean) / reference sd``; ``sd ratio = sd /
    reference sd`` (NaN when the result has no standard deviations, as MAP's
    point has none). ``missing`` lists the reference names whose site the
    result does not report.
    """

    posterior: str
    rows: list
    missing: list = field(default_factory=list)

    @property
    def has_sd(self):
        return all(np.isfinite(r.sd) for r in self.rows)

    @property
    def worst_z(self):
        """The largest |z| over all scalars."""
        return max(abs(r.z) for r in self.rows)

    @property
    def worst_sd_ratio(self):
        """The sd ratio farthest from 1 on the log scale (0.5 and 2 are equally far); NaN without sds."""
        if not self.has_sd:
            return math.nan
        return max((r.sd_ratio for r in self.rows), key=lambda ratio: abs(math.log(ratio)))

    def ok(self, z_tol=0.3, sd_bounds=(0.7, 1.3)):
        """True when every |z| <= ``z_tol`` and every sd ratio lies in ``sd_bounds`` = (lo, hi).

        ``sd_bounds=None`` checks the means only; a result without sds (a
        point estimate) is judged by its z alone.
        """
        if self.worst_z > z_tol:
            return False
        if sd_bounds is None or not self.has_sd:
            return True
        lo, hi = sd_bounds
        return all(lo <= r.sd_ratio <= hi for r in self.rows)

    def table(self):
        """A printable table: one line per scalar, then the worst values."""
        lines = [f"{self.posterior}", f"{'parameter':<14s}{'mean':>12s}{'ref mean':>12s}{'ref sd':>10s}"
                 f"{'z':>8s}{'sd':>10s}{'sd ratio':>10s}"]
        for r in self.rows:
            lines.append(f"{r.name:<14s}{r.mean:12.4g}{r.ref_mean:12.4g}{r.ref_sd:10.4g}{r.z:8.3f}"
                         f"{r.sd:10.4g}{r.sd_ratio:10.3f}")
        lines.append(f"worst |z| = {self.worst_z:.3f}, worst sd ratio = {self.worst_sd_ratio:.3f}")
        if self.missing:
            lines.append(f"not in the result: {', '.join(self.missing)}")
        return "\n".join(lines)

    __str__ = table


def _summaries(result):
    """(means, sds) dicts from a result: ``.mean``/``.std``, or a point estimate's ``.values`` (sds None)."""
    if hasattr(result, "mean") and isinstance(getattr(result, "mean"), dict):
        return result.mean, getattr(result, "std", None)
    if hasattr(result, "values") and isinstance(getattr(result, "values"), dict):
        return result.values, None
    raise TypeError(f"compare: {type(result).__name__} has neither .mean/.std dicts nor a .values dict")


def compare(result, posterior):
    """Measure ``result`` (``.mean`` and ``.std`` dicts site -> array in model space) against ``posterior``.

    Every scalar of every reference parameter whose site the result has gets
    a row; a result with only ``.values`` (MAP) is compared as a mean with NaN
    sds. Raises ``ValueError`` when the result shares no site with the reference.
    """
    means, sds = _summaries(result)
    rows, missing = [], []
    for name, ref in posterior.reference.items():
        site, index = parse_stan_name(name)
        if site not in means:
            missing.append(name)
            continue
        mean = np.asarray(means[site], dtype=float)
        if mean.ndim < len(index) or any(i >= n for i, n in zip(index, mean.shape[mean.ndim - len(index):])):
            raise ValueError(f"compare: site {site!r} has shape {mean.shape}; the reference has {name}")
        sd = math.nan if sds is None or site not in sds else float(np.asarray(sds[site], dtype=float)[index])
        rows.append(Row(name, float(mean[index]), sd, float(ref["mean"]), float(ref["sd"])))
    if not rows:
        raise ValueError(f"compare: the result has sites {sorted(means)}, none of the reference parameters "
                         f"{sorted(posterior.dimensions)} of {posterior.name}")
    return Comparison(posterior.name, rows, missing)


# ---------------------------------------------------------------- ports: helpers


def flat(name, shape=(), support=constraints.real):
    """A parameter with no prior in Stan: the flat law on its declared ``support``, event shape ``shape``."""
    return sample(name, dist.ImproperUniform(support, (), tuple(shape)))


def normal_vector(name, loc, scale, size):
    """``vector[size] name; name ~ normal(loc, scale);``"""
    return sample(name, dist.Normal(loc * np.ones(size), scale).to_event(1))



def linear(beta, *predictors):
    """Stan's ``beta[1] + beta[2] * x_1 + beta[3] * x_2 + ...``, each term a whole data vector.

    ``beta`` is indexed from the right, so a leading particle or chain axis
    broadcasts against the data (as every port here does).
    """
    mu = beta[..., 0]
    for k, column in enumerate(predictors, start=1):
        mu = mu + beta[..., k] * column
    return mu


def matvec(X, beta):
    """``X * beta`` for a data matrix ``X``, column by column (a loop over coefficients, not data points)."""
    return sum(beta[..., k] * X[:, k] for k in range(X.shape[1]))


def positive(name):
    """``real<lower=0> name;`` with no prior."""
    return flat(name, (), constraints.positive)


# ---------------------------------------------------------------- ports: regressions


def earn_height(earn, height):
    beta, sigma = flat("beta", (2,)), positive("sigma")
    observe("earn", dist.Normal(linear(beta, height), sigma), earn)


def log10earn_height(earn, height):
    beta, sigma = flat("beta", (2,)), positive("sigma")
    observe("log10_earn", dist.Normal(linear(beta, height), sigma), np.log10(earn))


def logearn_height(earn, height):
    beta, sigma = flat("beta", (2,)), positive("sigma")
    observe("log_earn", dist.Normal(linear(beta, height), sigma), np.log(earn))


def logearn_interaction(earn, height, male):
    beta, sigma = flat("beta", (4,)), positive("sigma")
    observe("log_earn", dist.Normal(linear(beta, height, male, height * male), sigma), np.log(earn))


def kidscore_momhs(kid_score, mom_hs):
    beta = flat("beta", (2,))
    sigma = sample("sigma", dist.HalfCauchy(2.5))
    observe("kid_score", dist.Normal(linear(beta, mom_hs), sigma), kid_score)


def kidscore_momiq(kid_score, mom_iq):
    beta = flat("beta", (2,))
    sigma = sample("sigma", dist.HalfCauchy(2.5))
    observe("kid_score", dist.Normal(linear(beta, mom_iq), sigma), kid_score)


def kidscore_interaction(kid_score, mom_iq, mom_hs):
    beta = flat("beta", (4,))
    sigma = sample("sigma", dist.HalfCauchy(2.5))
    observe("kid_score", dist.Normal(linear(beta, mom_hs, mom_iq, mom_hs * mom_iq), sigma), kid_score)


def kidscore_interaction_c(kid_score, mom_hs, mom_iq):
    c_mom_hs, c_mom_iq = mom_hs - np.mean(mom_hs), mom_iq - np.mean(mom_iq)
    beta, sigma = flat("beta", (4,)), positive("sigma")
    observe("kid_score", dist.Normal(linear(beta, c_mom_hs, c_mom_iq, c_mom_hs * c_mom_iq), sigma), kid_score)


def kidscore_mom_work(kid_score, mom_work):
    work2, work3, work4 = (np.asarray(mom_work == level, dtype=float) for level in (2, 3, 4))
    beta, sigma = flat("beta", (4,)), positive("sigma")
    observe("kid_score", dist.Normal(linear(beta, work2, work3, work4), sigma), kid_score)


def kilpisjarvi(x, y, pmualpha, psalpha, pmubeta, psbeta):
    alpha = sample("alpha", dist.Normal(float(pmualpha), float(psalpha)))
    beta = sample("beta", dist.Normal(float(pmubeta), float(psbeta)))
    sigma = positive("sigma")
    observe("y", dist.Normal(alpha + beta * x, sigma), y)


def mesquite(weight, diam1, diam2, canopy_height, total_height, density, group):
    beta, sigma = flat("beta", (7,)), positive("sigma")
    mu = linear(beta, diam1, diam2, canopy_height, total_height, density, group)
    observe("weight", dist.Normal(mu, sigma), weight)


def logmesquite(weight, diam1, diam2, canopy_height, total_height, density, group):
    beta, sigma = flat("beta", (7,)), positive("sigma")
    logs = (np.log(v) for v in (diam1, diam2, canopy_height, total_height, density))
    observe("log_weight", dist.Normal(linear(beta, *logs, group), sigma), np.log(weight))


def logmesquite_logva(weight, diam1, diam2, canopy_height, group):
    log_canopy_volume, log_canopy_area = np.log(diam1 * diam2 * canopy_height), np.log(diam1 * diam2)
    beta, sigma = flat("beta", (4,)), positive("sigma")
    mu = linear(beta, log_canopy_volume, log_canopy_area, group)
    observe("log_weight", dist.Normal(mu, sigma), np.log(weight))


def logmesquite_logvolume(weight, diam1, diam2, canopy_height):
    beta, sigma = flat("beta", (2,)), positive("sigma")
    observe("log_weight", dist.Normal(linear(beta, np.log(diam1 * diam2 * canopy_height)), sigma), np.log(weight))


def nes(partyid7, real_ideo, race_adj, educ1, gender, income, age_discrete):
    age30_44, age45_64, age65up = (np.asarray(age_discrete == level, dtype=float) for level in (2, 3, 4))
    beta, sigma = flat("beta", (9,)), positive("sigma")
    mu = linear(beta, real_ideo, race_adj, age30_44, age45_64, age65up, educ1, gender, income)
    observe("partyid7", dist.Normal(mu, sigma), partyid7)


def blr(X, y):
    beta = normal_vector("beta", 0.0, 10.0, X.shape[1])
    sigma = sample("sigma", dist.HalfNormal(10.0))
    observe("y", dist.Normal(matvec(X, beta), sigma), y)


def diamonds(Y, X, prior_only):
    """brms's Gaussian regression on a centred design; the intercept is that of the centred predictors."""
    Xc = X[:, 1:] - np.mean(X[:, 1:], axis=0)
    b = normal_vector("b", 0.0, 1.0, Xc.shape[1])
    intercept = sample("Intercept", dist.StudentT(3.0, 8.0, 10.0))
    sigma = sample("sigma", dist.HalfStudentT(3.0, 10.0))  # student_t(3, 0, 10) - lccdf(0): a half-t
    if not prior_only:
        observe("Y", dist.Normal(intercept + matvec(Xc, b), sigma), Y)


# ---------------------------------------------------------------- ports: time series, hierarchies, mixtures


def arK(K, y):
    """An AR(K) model; the lags form a (T - K, K) design whose column k holds y[t - k - 1]."""
    K, T = int(K), len(y)
    alpha = sample("alpha", dist.Normal(0.0, 10.0))
    beta = normal_vector("beta", 0.0, 10.0, K)
    sigma = sample("sigma", dist.HalfCauchy(2.5))
    lags = np.stack([y[K - k - 1:T - k - 1] for k in range(K)], axis=-1)
    observe("y", dist.Normal(alpha + matvec(lags, beta), sigma), y[K:])


def garch11(y, sigma1):
    """GARCH(1,1): the volatility recursion runs over time, the likelihood is one vectorized term."""
    mu = flat("mu")
    alpha0 = positive("alpha0")
    alpha1 = flat("alpha1", (), constraints.interval(0.0, 1.0))
    beta1 = flat("beta1", (), constraints.interval(0.0, 1.0 - alpha1))
    shock = (y[:-1] - mu) ** 2  # [..., t]: the squared innovations, one vectorized term
    # variances as slices t:t+1, so a leading particle or chain axis rides along
    var = [np.full(np.shape(shock[..., :1]), float(sigma1) ** 2)]
    for t in range(1, len(y)):
        var.append(alpha0 + alpha1 * shock[..., t - 1:t] + beta1 * var[-1])
    observe("y", dist.Normal(mu, anp.sqrt(anp.concatenate(var, axis=-1))), y)


def eight_schools_noncentered(y, sigma):
    theta_trans = sample("theta_trans", dist.Normal(0.0, 1.0).expand((len(y),)))  # one per school: a batch
    mu = sample("mu", dist.Normal(0.0, 5.0))
    tau = sample("tau", dist.HalfCauchy(5.0))
    theta = deterministic("theta", theta_trans * tau + mu)
    observe("y", dist.Normal(theta, sigma), y)


def gp_pois_regr(x, k):
    """A latent Gaussian process with a Poisson likelihood on the log scale (non-centred: f = L f_tilde)."""
    from .. import math as pmath

    rho = sample("rho", dist.Gamma(25.0, 4.0))
    alpha = sample("alpha", dist.HalfNormal(2.0))
    f_tilde = sample("f_tilde", dist.Normal(0.0, 1.0).expand((len(x),)))  # one per data point: a batch
    cov = pmath.gp_exp_quad_cov(x, alpha, rho) + 1e-10 * np.eye(len(x))
    # L f_tilde; under a particle or chain plate alpha and rho are (..., 1) and cov is (..., 1, N, N):
    # f_tilde[..., None, :] lines up with that axis and [..., 0, :] drops it again
    f = deterministic("f", anp.einsum("...ij,...j->...i", pmath.cholesky(cov), f_tilde[..., None, :])[..., 0, :])
    observe("k", dist.Poisson(log_rate=f), k)


def hmm_example(N, K, y):
    """A two-state Gaussian HMM, the states summed out by the forward algorithm (a loop over time only)."""
    from .. import math as pmath

    K = int(K)
    theta1 = flat("theta1", (K,), constraints.simplex)
    theta2 = flat("theta2", (K,), constraints.simplex)
    mu = flat("mu", (K,), constraints.positive_ordered_vector)
    factor("mu_prior", dist.Normal(3.0, 1.0).log_prob(mu[..., 0]) + dist.Normal(10.0, 1.0).log_prob(mu[..., 1]))
    log_theta = anp.log(anp.stack([theta1, theta2], axis=-2))              # [..., j, k]: from state j to k
    emission = dist.Normal(mu[..., None, :], 1.0).log_prob(np.asarray(y)[:, None])  # [..., t, k]
    gamma = emission[..., 0, :]
    for t in range(1, int(N)):
        gamma = pmath.logsumexp(gamma[..., :, None] + log_theta, axis=-2) + emission[..., t, :]
    factor("y", pmath.logsumexp(gamma, axis=-1))


def low_dim_gauss_mix(y):
    """Two Gaussians mixed with weight theta; ordered means identify the components."""
    from .. import math as pmath

    mu = flat("mu", (2,), constraints.ordered_vector)
    factor("mu_prior", anp.sum(dist.Normal(0.0, 2.0).log_prob(mu), axis=-1))
    sigma = sample("sigma", dist.HalfNormal(2.0 * np.ones(2)).to_event(1))
    theta = sample("theta", dist.Beta(5.0, 5.0))
    lp1, lp2 = (dist.Normal(mu[..., k:k + 1], sigma[..., k:k + 1]).log_prob(y) for k in (0, 1))  # [..., n]
    factor("y", anp.sum(pmath.log_mix(theta[..., None], lp1, lp2), axis=-1))


PORTS = {
    "arK-arK": arK,
    "diamonds-diamonds": diamonds,
    "earnings-earn_height": earn_height,
    "earnings-log10earn_height": log10earn_height,
    "earnings-logearn_height": logearn_height,
    "earnings-logearn_interaction": logearn_interaction,
    "eight_schools-eight_schools_noncentered": eight_schools_noncentered,
    "garch-garch11": garch11,
    "gp_pois_regr-gp_pois_regr": gp_pois_regr,
    "hmm_example-hmm_example": hmm_example,
    "kidiq-kidscore_interaction": kidscore_interaction,
    "kidiq-kidscore_momhs": kidscore_momhs,
    "kidiq-kidscore_momiq": kidscore_momiq,
    "kidiq_with_mom_work-kidscore_interaction_c": kidscore_interaction_c,
    "kidiq_with_mom_work-kidscore_mom_work": kidscore_mom_work,
    "kilpisjarvi_mod-kilpisjarvi": kilpisjarvi,
    "low_dim_gauss_mix-low_dim_gauss_mix": low_dim_gauss_mix,
    "mesquite-logmesquite": logmesquite,
    "mesquite-logmesquite_logva": logmesquite_logva,
    "mesquite-logmesquite_logvolume": logmesquite_logvolume,
    "mesquite-mesquite": mesquite,
    "nes1972-nes": nes,
    "nes1980-nes": nes,
    "nes1992-nes": nes,
    "nes2000-nes": nes,
    "sblrc-blr": blr,
}

# The posteriors that are linear regressions with a Gaussian likelihood: Laplace is nearly exact on them.
REGRESSIONS = tuple(name for name, fn in PORTS.items() if fn in (
    earn_height, log10earn_height, logearn_height, logearn_interaction, kidscore_momhs, kidscore_momiq,
    kidscore_interaction, kidscore_interaction_c, kidscore_mom_work, kilpisjarvi, mesquite, logmesquite,
    logmesquite_logva, logmesquite_logvolume, nes, blr))
