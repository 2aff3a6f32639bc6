"""Every engine on every posteriordb posterior, measured against Stan's reference draws.

For each (posterior, engine) pair: fit the port, compare with the reference
(worst |z| of the means in reference sds, worst sd ratio), PSIS k-hat of the
approximation, wall seconds, and a verdict:

- ok: within bounds (samplers |z| <= 0.1, sd ratio in [0.9, 1.1]; approximations
  |z| <= 0.3, sd ratio in [0.7, 1.3]; a point estimate |z| <= 0.3 from the mode);
- flagged: off, but the engine said so (k-hat > 0.7 or not computable, a warning, divergences;
  a warning that a model runs in a loop is about speed and does not count);
- SILENT-WRONG: off, and nothing said;
- error: the engine raised.

MAP is a point estimate, the posterior mode in the model's parameterization: it is
judged against that mode, found here independently (``find_mode``, L-BFGS-B then
Newton steps, on MAP's own loss from the reference mean), not against the
posterior mean, which a mode need not match; the note says how far the two are.

The (posterior, engine) fits are independent tasks: ``--executor process`` runs
them in a process pool of ``--workers``, ``--executor dask`` on a Dask
LocalCluster of as many worker processes (one thread each); rows print as
fits finish, and the table again in input order at the end. Every task is
seeded 0, as in-process, so the numbers do not depend on the executor.

    python benchmarks/posteriordb.py [--engines laplace map advi-meanfield advi-fullrank advi-fr-cold
                                                pathfinder pathfinder-1 nuts nuts-laplace]
                                     [--posteriors NAME ...] [--quick] [--advi-steps 10000]
                                     [--executor {none,process,dask}] [--workers 2]
"""
import argparse
import platform
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np

from ppl.distributions.transforms import biject_to
from ppl.handlers import replace, trace
from ppl.infer import ADVI, MAP, NUTS, SVI, Laplace, Pathfinder, Trace_ELBO, diagnostics
from ppl.infer.diagnostics import psis_khat
from ppl.infer.parallel import make_executor, run_tasks
from ppl.infer.svi import NEWTON_TOL, FlatLoss, find_mode
from ppl.optim import Adam
from ppl.testing import posteriordb

KHAT_LIMIT = 0.7
SAMPLER_BOUNDS = (0.1, (0.9, 1.1))
APPROXIMATION_BOUNDS = (0.3, (0.7, 1.3))
SETTINGS = {"advi_steps": 10000, "map_steps": 10000, "nuts_draws": 1000}


def run_advi(family):
    def fit(model, args, kwargs, rng_seed):
        # Stan's defaults: step-size search, then stop when the ELBO's relative change falls below 0.01
        return ADVI(model, family, adapt_step_size=True, tol=0.01).run(SETTINGS["advi_steps"], *args,
                                                                        rng_seed=rng_seed, **kwargs)
    return fit


# name -> (fit(model, args, kwargs, rng_seed) -> result, kind): kind is "sampler", "approximation" or "point"
ENGINES = {
    "laplace": (lambda model, args, kwargs, rng_seed: Laplace(model).run(*args, rng_seed=rng_seed, **kwargs),
                "approximation"),
    "map": (lambda model, args, kwargs, rng_seed: MAP(model).run(SETTINGS["map_steps"], *args, rng_seed=rng_seed,
                                                                 **kwargs), "point"),
    "advi-meanfield": (run_advi("meanfield"), "approximation"),
    "advi-fullrank": (run_advi("fullrank"), "approximation"),
    "advi-fr-cold": (lambda model, args, kwargs, rng_seed: ADVI(model, "fullrank", init=None, adapt_step_size=True,
                                                                tol=0.01).run(SETTINGS["advi_steps"], *args,
                                                                              rng_seed=rng_seed, **kwargs),
                     "approximation"),
    "pathfinder": (lambda model, args, kwargs, rng_seed: Pathfinder(model, num_paths=4).run(
        *args, rng_seed=rng_seed, **kwargs), "approximation"),
    "pathfinder-1": (lambda model, args, kwargs, rng_seed: Pathfinder(model, num_paths=1).run(
        *args, rng_seed=rng_seed, **kwargs), "approximation"),
    "nuts": (lambda model, args, kwargs, rng_seed: NUTS(model).run(
        SETTINGS["nuts_draws"], *args, num_warmup=SETTINGS["nuts_draws"], num_chains=4, rng_seed=rng_seed,
        progress=False, **kwargs), "sampler"),
    # as a user runs a regression: dense mass, chains and metric from the Laplace approximation
    "nuts-laplace": (lambda model, args, kwargs, rng_seed: NUTS(model, dense_mass=True, init="laplace").run(
        SETTINGS["nuts_draws"], *args, num_warmup=SETTINGS["nuts_draws"], num_chains=4, rng_seed=rng_seed,
        progress=False, **kwargs), "sampler"),
}
DEFAULT_ENGINES = ["laplace", "map", "advi-meanfield", "advi-fullrank", "advi-fr-cold", "pathfinder", "pathfinder-1"]


@dataclass
class Summary:
    """Means and sds per site in model space, the deterministic sites included (``std`` None for a point)."""

    mean: dict
    std: dict


def deterministic_sites(model, args, kwargs, values):
    """The model's deterministic sites (eight schools' theta, the GP's f) at one set of latent values."""
    tr = trace(replace(model, values, strict=False)).get_trace(*args, **kwargs)  # values may hold them already
    return {name: np.asarray(site.value) for name, site in tr.items() if site.type == "deterministic"}


def summarize(result, model, args, kwargs, rng_seed, num_draws=1000):
    """``result``'s means and sds, plus those of the deterministic sites from ``num_draws`` of its draws.

    A point estimate (``.values``) gets the deterministic sites at the point and no sds.
    """
    if not hasattr(result, "sample"):
        point = dict(result.values)
        point.update(deterministic_sites(model, args, kwargs, point))
        return Summary(point, None)
    mean, std = dict(result.mean), dict(result.std)
    first = deterministic_sites(model, args, kwargs, {k: np.asarray(v) for k, v in result.mean.items()})
    first = {name: value for name, value in first.items() if name not in mean}  # NUTS and Pathfinder report them
    if first:
        draws = result.sample(num_draws, rng_seed)
        derived = [deterministic_sites(model, args, kwargs, {k: v[i] for k, v in draws.items()})
                   for i in range(num_draws)]
        for name in first:
            stacked = np.stack([d[name] for d in derived])
            mean[name], std[name] = stacked.mean(0), stacked.std(0, ddof=1)
    return Summary(mean, std)


def khat_of(result, model, args, kwargs, rng_seed):
    """The result's own k-hat if it has one, else PSIS k-hat of its guide (1000 draws)."""
    if getattr(result, "khat", None) is not None:
        return float(result.khat)
    return psis_khat(model, result.guide, result.params, *args, num_samples=1000, rng_seed=rng_seed, **kwargs).khat


@dataclass
class Outcome:
    posterior: str
    engine: str
    worst_z: float = np.nan
    worst_sd_ratio: float = np.nan
    khat: float = np.nan
    seconds: float = np.nan
    verdict: str = "error"
    note: str = ""


def reference_mode(result, model, args, kwargs, posterior):
    """The mode a MAP fit looks for, found independently of it: ``find_mode`` (L-BFGS-B at machine precision,
    then Newton steps; Laplace's) on MAP's own loss -log p(x, z) in its unconstrained parameters, from the
    reference posterior mean (from MAP's point if that cannot be mapped back, for a dependent support).
    Returns ``(Summary of the mode, deterministic sites included; whether find_mode converged there)``."""
    svi = SVI(model, result.guide, Adam(0.05), Trace_ELBO())
    objective = FlatLoss(svi, result.state, args, kwargs)
    state = result.state.copy()
    if not result.guide.dependent:
        means = reference_values(result.values, posterior)
        for path, view in zip(state.flat.paths, state.flat.views()):
            site = path[0][:-len(".loc")]
            constraint = state.constraints[path[0]]
            if site in means:
                view[...] = np.reshape(means[site] if constraint is None else biject_to(constraint).inv(means[site]),
                                       view.shape)
    mode = find_mode(objective, state.flat.buffer.copy())
    state.flat.buffer[...] = mode.u
    point = dict(result.guide.median(svi.get_params(state)))
    point.update(deterministic_sites(model, args, kwargs, point))
    return Summary(point, None), bool(mode.positive_definite and mode.decrement < NEWTON_TOL)


def reference_values(values, posterior):
    """``values`` (site -> array) with every scalar the reference has replaced by its posterior mean."""
    out = {site: np.array(value, dtype=float) for site, value in values.items()}
    for name, ref in posterior.reference.items():
        site, index = posteriordb.parse_stan_name(name)
        if site in out:
            out[site][index] = ref["mean"]
    return out


def judge_point(summary, mode, posterior):
    """A point estimate against ``mode`` (a ``Summary``), in reference sds: ``posteriordb.compare`` with the
    reference means replaced by the mode's values."""
    reference = {}
    for name, ref in posterior.reference.items():
        site, index = posteriordb.parse_stan_name(name)
        if site in mode.mean:
            reference[name] = dict(ref, mean=float(np.asarray(mode.mean[site], dtype=float)[index]))
    at_mode = posteriordb.Posterior(posterior.name, {}, "", reference, {}, posterior.dimensions)
    return posteriordb.compare(summary, at_mode)


def verdict(comparison, kind, khat, warned, divergences):
    """ok / flagged / SILENT-WRONG from the comparison and what the engine said."""
    z_tol, sd_bounds = SAMPLER_BOUNDS if kind == "sampler" else APPROXIMATION_BOUNDS
    if comparison.ok(z_tol, None if kind == "point" else sd_bounds):
        return "ok"
    said = khat > KHAT_LIMIT or np.isnan(khat) and kind != "point" or warned or divergences  # NaN: PSIS failed
    return "flagged" if said else "SILENT-WRONG"


def run_task(name, engine, rng_seed=0):
    """Fit one posterior with one engine and judge it: an independent task."""
    fit, kind = ENGINES[engine]
    model, args, kwargs = posteriordb.model(name)
    outcome = Outcome(name, engine)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        try:
            result = fit(model, args, kwargs, rng_seed)
        except Exception as err:  # an engine's failure is a row of the table, not the end of the run
            outcome.seconds, outcome.note = time.perf_counter() - start, f"{type(err).__name__}: {err}"[:160]
            return outcome
        outcome.seconds = time.perf_counter() - start
        try:
            if kind == "approximation":
                outcome.khat = khat_of(result, model, args, kwargs, rng_seed)
            summary = summarize(result, model, args, kwargs, rng_seed)
        except Exception as err:
            outcome.note = f"after fitting: {type(err).__name__}: {err}"[:160]
            return outcome
    posterior = posteriordb.load(name)
    comparison = posteriordb.compare(summary, posterior)
    if kind == "point":  # a point estimate is judged against the mode it looks for, not the posterior mean
        try:
            mode, found = reference_mode(result, model, args, kwargs, posterior)
        except Exception as err:
            outcome.note = f"reference mode: {type(err).__name__}: {err}"[:160]
            return outcome
        apart = posteriordb.compare(mode, posterior).worst_z
        comparison = judge_point(summary, mode, posterior)
        outcome.note = (f"|z| from the mode (the mode is {apart:.2f} reference sds from the posterior mean"
                        + ("" if found else "; the reference mode search did not converge") + ")")
    outcome.worst_z, outcome.worst_sd_ratio = comparison.worst_z, comparison.worst_sd_ratio
    divergences = int(np.sum(getattr(result, "divergences", 0) or 0))
    said = [w for w in caught if not is_information(w)]
    outcome.verdict = verdict(comparison, kind, outcome.khat, bool(said), divergences)
    if kind == "sampler":
        latent = [v for k, v in result.samples.items() if k in result.potential.shapes]
        ess = min(float(np.nanmin(diagnostics.ess(v, "bulk"))) for v in latent)
        outcome.note = (f"min bulk ESS {ess:.0f} ({ess / outcome.seconds:.1f}/s), R-hat "
                        f"{max(float(np.nanmax(diagnostics.r_hat(v))) for v in latent):.3f}, "
                        f"{divergences} divergences")
    if said:
        outcome.note = (outcome.note + "; " if outcome.note else "") + "warned: " + " | ".join(
            short(w) for w in said)
    return outcome


def is_information(warning):
    """A warning about speed, not about the answer: a model run in a loop because it does not broadcast
    (said once per model and process, so it must not decide a verdict)."""
    return "does not broadcast" in str(warning.message)


def short(warning):
    """The warning's first sentence, and for a moment check the scalars it names."""
    text = str(warning.message)
    if "importance-weighted moments disagree" in text:
        return "moment check: " + text.split("with its own: ", 1)[1].split(". Its means", 1)[0]
    return text.split(";", 1)[0][:110]


def run_sent_task(task, rng_seed):
    """``run_task`` on a worker: ``task = (name, engine, settings)`` carries this run's step counts, which a
    worker started afresh (Dask spawns its workers) would not otherwise see."""
    name, engine, settings = task
    SETTINGS.update(settings)
    return run_task(name, engine, rng_seed)


def _fmt(x, spec):
    return "n/a" if not np.isfinite(x) else format(x, spec)


HEADER = f"{'posterior':44s} {'engine':15s} {'|z|':>8s} {'sd ratio':>9s} {'k-hat':>7s} {'seconds':>8s}  verdict"


def row(o):
    return (f"{o.posterior:44s} {o.engine:15s} {_fmt(o.worst_z, '8.3f'):>8s} {_fmt(o.worst_sd_ratio, '9.3f'):>9s} "
            f"{_fmt(o.khat, '7.2f'):>7s} {o.seconds:8.2f}  {o.verdict}")


def print_notes(outcomes):
    notes = [o for o in outcomes if o.note]
    if notes:
        print("\nnotes:")
        for o in notes:
            print(f"  {o.posterior} / {o.engine}: {o.note}")
    print("\n|z|: worst |mean - reference mean| / reference sd over every scalar; sd ratio: the one farthest from 1")
    print("(log scale). k-hat: PSIS of the approximation's draws. MAP is a point estimate: no sd (n/a), and its |z|")
    print("is from the mode it looks for (find_mode from the reference mean, on MAP's loss), not the posterior mean.")


def print_summary(outcomes, engines):
    print(f"\n{'engine':15s} {'ok':>4s} {'flagged':>8s} {'silent-wrong':>13s} {'error':>6s} {'seconds':>8s}")
    for engine in engines:
        mine = [o for o in outcomes if o.engine == engine]
        count = {v: sum(o.verdict == v for o in mine) for v in ("ok", "flagged", "SILENT-WRONG", "error")}
        print(f"{engine:15s} {count['ok']:4d} {count['flagged']:8d} {count['SILENT-WRONG']:13d} {count['error']:6d} "
              f"{sum(o.seconds for o in mine):8.1f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", nargs="+", default=DEFAULT_ENGINES, choices=list(ENGINES),
                        help="default: every engine but the NUTS ones, which take minutes per posterior (add them by name)")
    parser.add_argument("--posteriors", nargs="+", default=None, metavar="NAME")
    parser.add_argument("--quick", action="store_true", help="the regressions only, ADVI and MAP capped at 2000 steps")
    parser.add_argument("--advi-steps", type=int, default=SETTINGS["advi_steps"])
    parser.add_argument("--map-steps", type=int, default=SETTINGS["map_steps"])
    parser.add_argument("--executor", choices=["none", "process", "dask"], default="none",
                        help="where the fits run: this process, a process pool, or a Dask LocalCluster")
    parser.add_argument("--workers", type=int, default=2, help="workers of the process pool or Dask cluster")
    args = parser.parse_args(argv)
    print("# python benchmarks/posteriordb.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    print(f"# {platform.machine()}, {platform.python_implementation()} {platform.python_version()}")
    SETTINGS["advi_steps"], SETTINGS["map_steps"] = args.advi_steps, args.map_steps
    names = args.posteriors or posteriordb.names()
    if args.quick:
        names = [n for n in names if n in posteriordb.REGRESSIONS]
        SETTINGS["advi_steps"], SETTINGS["map_steps"] = min(args.advi_steps, 2000), min(args.map_steps, 2000)
    unknown = sorted(set(names) - set(posteriordb.names()))
    if unknown:
        parser.error(f"unknown posteriors {unknown}; known: {posteriordb.names()}")
    tasks = [(name, engine, dict(SETTINGS)) for name in names for engine in args.engines]
    start = time.perf_counter()
    print(HEADER)
    with make_executor(args.executor, args.workers) as executor:
        # independent tasks, each seeded 0 as ever: a row prints as its fit finishes
        outcomes = run_tasks(run_sent_task, list(range(len(tasks))), tasks, [0] * len(tasks), executor,
                             on_result=lambda i, outcome: print(row(outcome), flush=True), caller="posteriordb")
    if executor is not None:  # completion order is the workers' business: the table again, in input order
        print(f"\nin input order:\n{HEADER}")
        for outcome in outcomes:
            print(row(outcome))
    print_notes(outcomes)
    print_summary(outcomes, args.engines)
    print(f"\ntotal {time.perf_counter() - start:.0f} s for {len(tasks)} fits"
          + ("" if executor is None else f" on {args.executor} with {args.workers} workers"))


if __name__ == "__main__":
    main()
