"""Normal and Student-t distribution functions with gradients, for ``cdf`` methods and truncation.

autograd's scipy wrappers have ``erf``/``erfc``/``erfinv`` but not the tail-stable
``ndtr``/``log_ndtr``/``ndtri`` nor the Student-t cdf, so these are primitives over
scipy.special with their derivatives written out:

    d ndtr(x)/dx = phi(x),   d log_ndtr(x)/dx = phi(x) / ndtr(x) = exp(log phi(x) - log_ndtr(x)),
    d ndtri(p)/dp = 1 / phi(ndtri(p)),   d T_df(t)/dt = f_df(t)  (the t density).

The t cdf has no closed-form derivative in ``df`` (it is an integral of the
incomplete beta function in its parameters); differentiating it there raises
rather than returning a silent zero. scipy.special is imported on first use,
as in ``special``, so a model that never asks for a cdf does not pay for it.
"""
import math

import autograd.numpy as np
from autograd.extend import defvjp, primitive
from autograd.numpy.numpy_vjps import unbroadcast_f

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _sp():
    import scipy.special

    return scipy.special


def _log_phi(x):
    return -0.5 * x * x - LOG_SQRT_2PI


@primitive
def ndtr(x):
    """Phi(x), the standard normal cdf (exact in both tails: erfc, not 1 - erf)."""
    return _sp().ndtr(x)


@primitive
def log_ndtr(x):
    """log Phi(x), finite far into the left tail (x = -1e4) where Phi(x) underflows."""
    return _sp().log_ndtr(x)


@primitive
def ndtri(p):
    """Phi^{-1}(p), the standard normal quantile."""
    return _sp().ndtri(p)


defvjp(ndtr, lambda ans, x: lambda g: g * np.exp(_log_phi(x)))
defvjp(log_ndtr, lambda ans, x: lambda g: g * np.exp(_log_phi(x) - ans))
defvjp(ndtri, lambda ans, p: lambda g: g * np.exp(-_log_phi(ans)))


@primitive
def student_t_cdf(df, t):
    """T_df(t), the standard Student-t cdf (scipy's stdtr)."""
    return _sp().stdtr(df, t)


@primitive
def student_t_icdf(df, p):
    """T_df^{-1}(p), the standard Student-t quantile (scipy's stdtrit)."""
    return _sp().stdtrit(df, p)


def _t_log_density(df, t):
    gammaln = _sp().gammaln
    return (gammaln((df + 1) / 2) - gammaln(df / 2) - 0.5 * np.log(df * math.pi)
            - (df + 1) / 2 * np.log1p(t * t / df))


def _no_df_gradient(name):
    def make_vjp(ans, df, t):
        def vjp(g):
            raise NotImplementedError(f"{name}: no gradient w.r.t. the degrees of freedom 'df' (the Student-t cdf "
                                      f"has no closed-form derivative in df); fix df or use an untruncated t")

        return vjp

    return make_vjp


defvjp(student_t_cdf, _no_df_gradient("student_t_cdf"),
       lambda ans, df, t: unbroadcast_f(t, lambda g: g * np.exp(_t_log_density(df, t))))
defvjp(student_t_icdf, _no_df_gradient("student_t_icdf"),
       lambda ans, df, p: unbroadcast_f(p, lambda g: g * np.exp(-_t_log_density(df, ans))))
