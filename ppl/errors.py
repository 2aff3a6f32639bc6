"""The error types a user catches.

Every error ``ppl`` raises on purpose is one of these (or a ``ValueError`` /
``TypeError`` for a bad argument, which is what Python users expect). Each
message names the culprit: the site, the argument, the shapes.
"""


class PPLError(Exception):
    """Base class of every ``ppl`` error."""


class SiteError(PPLError, ValueError):
    """Something is wrong at one site of a model; ``site`` holds its name."""

    def __init__(self, message, site=None):
        super().__init__(message)
        self.site = site


class DuplicateSiteError(SiteError):
    """Two sites with the same name in one run of a model."""


class UnknownSiteError(SiteError, KeyError):
    """A handler was given a name that no site of the model used."""

    def __str__(self):  # KeyError would repr() the message
        return self.args[0]


class MissingValueError(SiteError):
    """A latent site needs a value (e.g. in ``log_joint``) and none was given."""


class ShapeError(SiteError):
    """A value's shape does not fit its distribution at a site."""


class SupportError(SiteError):
    """A value lies outside the support of its distribution."""


class NonFiniteError(PPLError, FloatingPointError):
    """A loss or log-density became NaN or infinite during inference."""

    def __init__(self, message, step=None, site=None):
        super().__init__(message)
        self.step = step
        self.site = site


class NoClosedFormError(PPLError, NotImplementedError):
    """An analytic quantity (KL, entropy) is not available for these families."""


class CheckpointError(PPLError, ValueError):
    """A file is not a ppl checkpoint, or belongs to another model."""


class GuideStructureError(PPLError, ValueError):
    """The model's sites differ from those the guide was built for."""
