"""Robustness: errors that name the culprit, reproducibility, checkpoints, threads."""
import threading

import numpy as np
import pytest

import ppl
import ppl.distributions as dist
from ppl import observe, param, plate, sample
from ppl.errors import CheckpointError, GuideStructureError, NonFiniteError
from ppl.infer import ADVI, MAP, SVI, AutoNormal, Predictive, Trace_ELBO, log_evidence
from ppl.optim import Adam

DATA = np.array([0.3, -0.4, 1.2, 0.8])


def model(data):
    mu = sample("mu", dist.Normal(0.0, 1.0))
    with plate("data", len(data)):
        observe("x", dist.Normal(mu, 1.0), data)


def guide(data):
    loc = param("loc", 0.0)
    sample("mu", dist.Normal(loc, 0.5))


def test_non_finite_loss_names_step_and_site_and_keeps_last_finite_params():
    def exploding_model(data):
        mu = sample("mu", dist.Normal(0.0, 1.0))
        with plate("data", len(data)):
            observe("x", dist.Normal(mu, 1.0), data)
        ppl.factor("blowup", np.where(mu > 1.5, -np.inf, 0.0))

    def pushing_guide(data):
        sample("mu", dist.Delta(param("loc", 0.0)))

    svi = SVI(exploding_model, pushing_guide, Adam(0.5), Trace_ELBO())
    state = svi.init(0, DATA + 10)
    with pytest.raises(NonFiniteError, match=r"step \d+.*'blowup'") as info:
        for _ in range(100):
            state, _ = svi.update(state, DATA + 10)
    assert info.value.step == state.step
    last_finite = svi.get_params(info.value.state)["loc"]
    assert info.value.state.step == state.step - 1 and np.isfinite(last_finite) and last_finite <= 1.5


def test_bad_engine_arguments_name_them():
    with pytest.raises(ValueError, match="num_particles"):
        Trace_ELBO(num_particles=0)
    with pytest.raises(ValueError, match="family"):
        ADVI(model, family="diagonal")
    with pytest.raises(ValueError, match="num_steps"):
        MAP(model).run(-1, DATA)
    with pytest.raises(ValueError, match="lr"):
        Adam(0.0)
    with pytest.raises(ValueError, match="num_samples"):
        log_evidence(model, guide, {"loc": 0.0}, DATA, num_samples=0)


def test_model_with_data_dependent_sites_gets_clear_error():
    def fickle(data, extra):
        mu = sample("mu", dist.Normal(0.0, 1.0))
        if extra:
            sample("surprise", dist.Normal(0.0, 1.0))
        with plate("data", len(data)):
            observe("x", dist.Normal(mu, 1.0), data)

    guide_ = AutoNormal(fickle)
    svi = SVI(fickle, guide_, Adam(0.1), Trace_ELBO())
    state = svi.init(0, DATA, False)
    with pytest.raises(GuideStructureError, match="'surprise'"):
        svi.update(state, DATA, True)


def test_same_seed_bit_identical_everywhere():
    a = MAP(model).run(30, DATA, rng_seed=3)
    b = MAP(model).run(30, DATA, rng_seed=3)
    assert np.array_equal(a.losses, b.losses) and a.values["mu"] == b.values["mu"]
    p1 = Predictive(model, guide=guide, params={"loc": 0.2}, num_samples=50)(4, DATA)
    p2 = Predictive(model, guide=guide, params={"loc": 0.2}, num_samples=50)(4, DATA)
    assert np.array_equal(p1["x"], p2["x"])
    assert log_evidence(model, guide, {"loc": 0.2}, DATA, num_samples=64, rng_seed=1) == \
        log_evidence(model, guide, {"loc": 0.2}, DATA, num_samples=64, rng_seed=1)


def test_checkpoint_resume_follows_same_trajectory(tmp_path):
    svi = SVI(model, guide, Adam(0.05), Trace_ELBO(4))
    straight = svi.run(0, 40, DATA, progress=False)

    first = svi.run(0, 25, DATA, progress=False)
    path = tmp_path / "run.npz"
    first.state.save(path, losses=first.losses)
    fresh = svi.init(0, DATA)
    losses = fresh.restore(path)
    resumed = svi.run(0, 15, DATA, progress=False, state=fresh)
    assert np.array_equal(np.concatenate([losses, resumed.losses]), straight.losses)
    assert np.array_equal(resumed.state.flat.buffer, straight.state.flat.buffer)
    assert not list(tmp_path.glob("*.tmp"))  # written atomically: no temporary file left behind


def test_checkpoint_of_another_model_or_not_a_checkpoint(tmp_path):
    svi = SVI(model, guide, Adam(0.05), Trace_ELBO())
    state = svi.run(0, 3, DATA, progress=False).state
    path = tmp_path / "a.npz"
    state.save(path)

    def other_guide(data):
        sample("mu", dist.Normal(param("loc", 0.0), param("scale", 1.0, dist.constraints.positive)))

    other = SVI(model, other_guide, Adam(0.05), Trace_ELBO()).init(0, DATA)
    with pytest.raises(CheckpointError, match="do not match"):
        other.restore(path)
    junk = tmp_path / "junk.npz"
    np.savez(junk, something=np.ones(3))
    with pytest.raises(CheckpointError, match="not a ppl checkpoint"):
        state.restore(junk)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"definitely not a zip file")
    with pytest.raises(CheckpointError, match="garbage.npz"):
        state.restore(garbage)


def test_threads_fitting_different_models_match_sequential_runs():
    def run(data, seed_):
        return ADVI(model, "meanfield", Adam(0.05), num_particles=2).run(60, data, rng_seed=seed_)

    jobs = [(DATA, 0), (DATA * 2, 1), (DATA - 1, 2)]
    sequential = [run(*job) for job in jobs]
    parallel = [None] * len(jobs)

    def work(i):
        parallel[i] = run(*jobs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    [t.start() for t in threads]
    [t.join() for t in threads]
    for s, p in zip(sequential, parallel):
        assert np.array_equal(s.losses, p.losses)


def test_importing_ppl_and_its_engines_loads_no_plotting_progress_bar_or_scipy_stats():
    """matplotlib, tqdm and scipy.stats (about a second of imports together) load only when used."""
    import subprocess
    import sys

    code = ("import sys, ppl, ppl.infer, ppl.optim, ppl.nn; "
            "print(sorted(m for m in ('matplotlib', 'tqdm', 'scipy.stats', 'scipy.special') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
