"""Record a function's autograd graph once, then replay it: value and gradient without re-running Python.

A model evaluated at a new point runs its Python again: the handlers, the
distributions' constructors and checks, the boxes autograd wraps around
every intermediate. When the structure is fixed (the potential of a model
with the same sites at every point) all that decides nothing new. ``record``
runs ``fn`` once under a node type of its own that keeps, for every
primitive applied, the raw function, its constant arguments and which
arguments came from earlier nodes. ``Tape.value_and_grads`` then calls the
raw functions in that order and the primitives' VJPs in reverse: the same
arithmetic, with none of the Python around it.

A replay is only right if the arithmetic does not depend on the values:
Python control flow on a value, or a value read out of autograd's sight
(``getval``), is frozen at the recording point. Comparisons and other
functions without a gradient are recorded too (replayed forward, no
gradient back), so ``where(x > 0, ...)`` replays right; one whose answer
cannot be boxed (a Python or NumPy bool scalar, i.e. an ``if``) makes
``record`` raise ``NotReplayable``. Whatever slips past that (a value read
with ``getval``) is what ``Tape.agrees`` exists for: callers compare the
replay with a fresh evaluation at points other than the recording one.
"""
import itertools

import autograd.numpy as anp
import numpy as np
from autograd.core import VJPNode, primitive_vjps, sparse_add, sparse_object_types, vspace
from autograd.numpy.numpy_boxes import ArrayBox
from autograd.tracer import Node, isbox, new_box, notrace_primitives, primitive, register_notrace, trace_stack

_order = itertools.count()
# On a tape a comparison is a box too: a ``where`` downstream then replays it. A comparison of scalars
# gives a NumPy bool, boxed here; an ``if`` on it fails (a 0-d box has no truth value), which is what
# tells ``record`` it met control flow. Boxes of bools exist only on a tape, and combine as NumPy's do.
ArrayBox.register(np.bool_)
for _name, _fun in (("and", anp.bitwise_and), ("or", anp.bitwise_or), ("xor", anp.bitwise_xor)):
    if not hasattr(ArrayBox, f"__{_name}__"):
        setattr(ArrayBox, f"__{_name}__", lambda self, other, fun=_fun: fun(self, other))
        setattr(ArrayBox, f"__r{_name}__", lambda self, other, fun=_fun: fun(other, self))
if not hasattr(ArrayBox, "__invert__"):
    ArrayBox.__invert__ = lambda self: anp.invert(self)


def _truth(box):
    """autograd's ``bool(box)``, except on a tape, where an ``if`` on a value is what cannot be replayed."""
    if type(box._node) is _TapeNode:
        raise NotReplayable("Python control flow on a value (the truth value of a traced array)")
    return bool(box._value)


class NotReplayable(Exception):
    """The function's arithmetic depends on its values in a way a recorded graph cannot follow."""


def nondifferentiable(f):
    """Make ``f`` a primitive with no gradient: under autograd it sees raw values (as ``anp.floor`` does),
    and a tape replays it, so a quantity computed from the inputs (a stabilizing maximum, a mask) is
    recomputed at each replay instead of frozen at the recording point."""
    wrapped = primitive(f)
    register_notrace(VJPNode, wrapped)
    return wrapped


class _TapeNode(Node):
    __slots__ = ("fun", "args", "kwargs", "argnums", "parents", "index", "shape")

    def __init__(self, value, fun, args, kwargs, parent_argnums, parents):
        self.fun, self.args, self.kwargs = fun, args, kwargs
        self.argnums, self.parents, self.index, self.shape = parent_argnums, parents, next(_order), np.shape(value)

    def initialize_root(self, index):
        self.fun, self.args, self.kwargs, self.argnums, self.parents, self.index = None, (), {}, (), (), index


ArrayBox.__bool__ = _truth


# The gradients of the commonest primitives, as autograd defines them (so a replay is bit for bit a fresh
# evaluation), taking g, the answer and the arguments, before summing back over broadcast axes. The tape
# knows every shape, so that sum is planned once instead of looked up at each call, as autograd must.
_RULES = {
    np.add: (lambda g, ans, x, y: g, lambda g, ans, x, y: g),
    np.subtract: (lambda g, ans, x, y: g, lambda g, ans, x, y: -g),
    np.multiply: (lambda g, ans, x, y: y * g, lambda g, ans, x, y: x * g),
    np.true_divide: (lambda g, ans, x, y: g / y, lambda g, ans, x, y: -g * x / y**2),
    np.negative: (lambda g, ans, x: -g,),
    np.exp: (lambda g, ans, x: ans * g,),
    np.log: (lambda g, ans, x: g / x,),
    np.log1p: (lambda g, ans, x: g / (x + 1),),
    np.square: (lambda g, ans, x: g * 2 * x,),
}
_RESHAPES = {np.reshape, np.expand_dims, np.squeeze, np.ravel}


def _sum_back(arg_shape, ans_shape):
    """autograd's ``unbroadcast`` from ``ans_shape`` to ``arg_shape`` as a plan: None when nothing is summed."""
    extra = len(ans_shape) - len(arg_shape)
    kept = tuple(i for i, n in enumerate(arg_shape) if n == 1 and ans_shape[extra + i] != 1)
    if not extra and not kept:
        return None

    def sum_back(g):
        for _ in range(extra):
            g = np.sum(g, axis=0)
        for axis in kept:
            g = np.sum(g, axis=axis, keepdims=True)
        return g
    return sum_back


def _planned(node, back):
    """Per differentiated argument, (slot, rule, sum_back) when the primitive has a known rule, else None."""
    raw = node.fun.fun
    if raw in _RESHAPES:
        shape = np.shape(node.args[0])
        return tuple((slot, lambda g, ans, *args, shape=shape: np.reshape(g, shape), None) for _, slot in back)
    rules = _RULES.get(raw)
    if rules is None or node.kwargs or len(node.args) != len(rules):
        return None
    return tuple((slot, rules[argnum], _sum_back(np.shape(node.args[argnum]), node.shape)) for argnum, slot in back)


def _accumulate(prev, g):
    if type(g) in sparse_object_types:  # a gradient of indexing: make it a fresh dense array
        g = sparse_add(vspace(g), None, g)
    return g if prev is None else prev + g


class Tape:
    """The recorded graph of a function of several arrays; see the module docstring.

    ``ops`` holds, per node in evaluation order: the raw function, the
    argument template, keyword arguments, (argnum, slot) links to earlier
    slots, the links a gradient flows back along, the VJP maker (None: no
    gradient flows back), and the planned gradient (None: the VJP maker's).
    Slots 0..R-1 are the R inputs, slot R + k is node k's value; ``out`` is
    the scalar's slot, ``reported`` the reported value's.
    """

    def __init__(self, ops, input_shapes, out, reported):
        self.ops, self.input_shapes, self.out, self.reported = ops, input_shapes, out, reported

    def value_and_grads(self, arrays):
        """The reported value at ``arrays`` and the scalar's gradient with respect to each array."""
        r = len(self.input_shapes)
        values = list(arrays) + [None] * len(self.ops)
        called = []
        for k, (fun, template, kwargs, links, _, _, _) in enumerate(self.ops):
            args = list(template)
            for argnum, slot in links:
                args[argnum] = values[slot]
            values[r + k] = fun(*args, **kwargs)
            called.append(args)
        grads = [None] * len(values)
        grads[self.out] = np.ones_like(values[self.out])
        for k in range(self.out - r, -1, -1):
            g = grads[r + k]
            _, _, kwargs, _, back, vjpmaker, planned = self.ops[k]
            if g is None or vjpmaker is None:
                continue
            if planned is not None:
                ans, args = values[r + k], called[k]
                for slot, rule, sum_back in planned:
                    parent_grad = rule(g, ans, *args)
                    grads[slot] = _accumulate(grads[slot], parent_grad if sum_back is None else sum_back(parent_grad))
                continue
            argnums = tuple(argnum for argnum, _ in back)
            for (_, slot), parent_grad in zip(back, vjpmaker(argnums, values[r + k], tuple(called[k]), kwargs)(g)):
                grads[slot] = _accumulate(grads[slot], parent_grad)
        return values[self.reported], [np.zeros(shape) if g is None else g
                                       for shape, g in zip(self.input_shapes, grads[:r])]

    def agrees(self, fresh, arrays, rtol=1e-9, atol=1e-12):
        """Whether the replay at ``arrays`` equals ``fresh(arrays)`` (an evaluation that runs the Python)."""
        try:
            value, grads = self.value_and_grads(arrays)
        except Exception:  # a shape the recording did not see: the arithmetic depends on the values
            return False
        value_ref, grads_ref = fresh(arrays)
        return bool(np.allclose(value, value_ref, rtol=rtol, atol=atol)
                    and all(np.shape(g) == np.shape(h) and np.allclose(g, h, rtol=rtol, atol=atol)
                            for g, h in zip(grads, grads_ref)))

    def __len__(self):
        return len(self.ops)


def record(fn, arrays):
    """Run ``fn(*arrays)`` once and return its ``Tape``. ``fn`` returns the scalar to differentiate and
    the value to report (they may be the same; a batch of chains reports the vector it sums). Raises
    ``NotReplayable`` when it cannot be recorded (control flow on a value, an output that does not
    depend on the inputs, any error: record where a plain evaluation has succeeded, so that a genuine
    error shows there)."""
    roots = [_TapeNode.new_root(-1 - i) for i in range(len(arrays))]
    try:
        with trace_stack.new_trace() as t:
            out, reported = fn(*[new_box(a, t, root) for a, root in zip(arrays, roots)])
            if not all(isbox(x) and x._trace == t for x in (out, reported)):
                raise NotReplayable("the output does not depend on the inputs")
    except Exception as err:  # e.g. an ``if`` on a boxed comparison; a genuine error recurs without the tape
        raise NotReplayable(f"{type(err).__name__}: {err}") from err
    if np.ndim(out._value) != 0:
        raise ValueError(f"record: fn must return a scalar, got shape {np.shape(out._value)}")
    nodes = _ancestors([out._node, reported._node])
    slot = {id(root): i for i, root in enumerate(roots)}
    slot.update((id(node), len(roots) + k) for k, node in enumerate(nodes))
    nograd = notrace_primitives[VJPNode]
    differentiable = [True] * len(roots)  # per slot: whether a gradient can flow back through it
    ops = []
    for node in nodes:
        links = tuple((argnum, slot[id(parent)]) for argnum, parent in zip(node.argnums, node.parents))
        back = tuple(link for link in links if differentiable[link[1]])
        vjpmaker = None if node.fun in nograd or not back else primitive_vjps.get(node.fun)
        if vjpmaker is None and back and node.fun not in nograd:
            raise NotReplayable(f"no gradient is defined for {getattr(node.fun, '__name__', node.fun)}")
        differentiable.append(vjpmaker is not None)
        planned = None if vjpmaker is None else _planned(node, back)
        ops.append((node.fun.fun, list(node.args), node.kwargs, links, back, vjpmaker, planned))
    return Tape(ops, [np.shape(a) for a in arrays], slot[id(out._node)], slot[id(reported._node)])


def _ancestors(ends):
    """The non-root nodes the outputs depend on, in the order they were created (a topological order)."""
    seen, stack, nodes = set(), list(ends), []
    while stack:
        node = stack.pop()
        if id(node) in seen or node.fun is None:
            continue
        seen.add(id(node))
        nodes.append(node)
        stack.extend(node.parents)
    nodes.sort(key=lambda node: node.index)
    return nodes
