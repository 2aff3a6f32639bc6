"""Record a function's autograd graph once, then replay it: value and gradient without re-running Python.

A model evaluated at a new point runs its Python again: the handlers, the
distributions' constructors and checks, the boxes autograd wraps around
every intermediate. When the structure is fixed (the potential of a model
with the same sites at every point) all that decides nothing new. ``record``
runs ``fn`` once under a node type of its own that keeps, for every
primitive applied, the raw function, its constant arguments and which
arguments came from earlier nodes, and writes them out as one straight-line
Python function (``Tape.source``): the raw NumPy calls in order, then the
gradients in reverse, as code where a rule knows the primitive (the shapes
are known, so every sum back over broadcast axes is planned once) and
through the primitive's VJP maker where not. The same arithmetic, with none
of the Python around it. Three plans made once make it lighter than the
graph it came from: a gradient known to be one value everywhere (a
potential's seed, -1 after its negation) is a constant made once, and a
rule multiplies by it as code (g * x is -x for g = -1, exactly); a second
index of one array adds its gradient into the first one's array; and an
assignment nothing reads is dropped.

A replay is only right if the arithmetic does not depend on the values.
Comparisons and other functions without a gradient are recorded (replayed
forward, no gradient back), so ``where(x > 0, ...)`` replays right; an
``if`` on a recorded value raises ``NotReplayable``. What slips past that (a
value read out of autograd's sight with ``getval``, then used) is frozen at
the recording point: that is what ``Tape.agrees`` is for, a comparison of
the replay with a fresh evaluation at points other than the recording one.
"""
import itertools
import re

import autograd.numpy as anp
import numpy as np
from autograd.core import VJPNode, primitive_vjps, sparse_add, sparse_object_types, vspace
from autograd.numpy.numpy_boxes import ArrayBox
from autograd.tracer import Node, isbox, new_box, notrace_primitives, primitive, register_notrace, trace_stack

_order = itertools.count()


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
    __slots__ = ("fun", "args", "kwargs", "argnums", "parents", "index", "shape", "dtype")

    def __init__(self, value, fun, args, kwargs, parent_argnums, parents):
        self.fun, self.args, self.kwargs = fun, args, kwargs
        self.argnums, self.parents, self.index, self.shape = parent_argnums, parents, next(_order), np.shape(value)
        self.dtype = getattr(value, "dtype", None)

    def initialize_root(self, index):
        self.fun, self.args, self.kwargs, self.argnums, self.parents, self.index = None, (), {}, (), (), index


def _truth(box):
    """autograd's ``bool(box)``, except on a tape, where an ``if`` on a value is what cannot be replayed."""
    if type(box._node) is _TapeNode:
        raise NotReplayable("Python control flow on a value (the truth value of a traced array)")
    return bool(box._value)


# Under autograd's own nodes a comparison gives a plain array, so boxes of bools exist only on a tape,
# where a comparison is a box (a NumPy bool, for scalars) so that a ``where`` downstream replays it. They
# combine as NumPy's bools do. ``bool(box)`` is autograd's own except on a tape, where it raises.
ArrayBox.register(np.bool_)
for _name, _fun in (("and", anp.bitwise_and), ("or", anp.bitwise_or), ("xor", anp.bitwise_xor)):
    if not hasattr(ArrayBox, f"__{_name}__"):
        setattr(ArrayBox, f"__{_name}__", lambda self, other, fun=_fun: fun(self, other))
        setattr(ArrayBox, f"__r{_name}__", lambda self, other, fun=_fun: fun(other, self))
if not hasattr(ArrayBox, "__invert__"):
    ArrayBox.__invert__ = lambda self: anp.invert(self)
ArrayBox.__bool__ = _truth


def _sum_back(expr, arg_shape, ans_shape):
    """autograd's ``unbroadcast`` of the gradient ``expr`` from ``ans_shape`` to ``arg_shape``, as code."""
    extra = len(ans_shape) - len(arg_shape)
    for _ in range(extra):
        expr = f"np.add.reduce({expr}, axis=0)"
    for axis, n in enumerate(arg_shape):
        if n == 1 and ans_shape[extra + axis] != 1:
            expr = f"np.add.reduce({expr}, axis={axis}, keepdims=True)"
    return expr


def _reshape(a, shape):
    """``np.reshape`` without its dispatch (a few microseconds, against the method's fraction of one)."""
    return a.reshape(shape) if type(a) is np.ndarray else np.reshape(a, shape)


def _dense(g):
    """A gradient of indexing comes as autograd's sparse object: make it a fresh dense array."""
    return sparse_add(vspace(g), None, g) if type(g) in sparse_object_types else g


def _add(a, b):
    """Two contributions to one gradient: arrays add; a tuple or list (of a primitive that returns several
    values) adds element by element, as autograd's vector spaces do, never concatenates."""
    if type(a) in (tuple, list):
        return type(a)(_add(x, y) for x, y in zip(a, b))
    return a + b


class Constant(str):
    """The name of a gradient known, when the code is generated, to hold one value ``value`` everywhere (the
    seed 1, then -1 through a negation, a sum's broadcast, a reshape). A rule may use the value: g * x is x
    or -x for g = 1 or -1, exactly, so the broadcast array g need not exist; a rule whose result is again
    one value everywhere returns ``Constant(expr, value)``."""

    def __new__(cls, name, value):
        self = super().__new__(cls, name)
        self.value = float(value)
        return self


def times(g, expr):
    """The code of g * (expr), for g a gradient's name: without the product when g is the constant 1 or -1
    (multiplying by +-1 is exact, so the values are the same)."""
    value = getattr(g, "value", None)
    if value == 1.0:
        return f"({expr})"
    if value == -1.0:
        return f"-({expr})"
    return f"{g} * ({expr})"


# The names every replay's code may call, besides those a rule adds through ``defrule``.
_HELPERS = {"np": np, "_reshape": _reshape, "_dense": _dense, "_add": _add}


# The gradients of the commonest primitives as autograd defines them (so a replay is bit for bit a fresh
# evaluation), as code: a rule(op, argnum, g, args, ans, let) gives the expression, in the replay's names,
# of the gradient with respect to argument ``argnum``, or None to leave it to the primitive's VJP maker;
# ``let(expr)`` names a subexpression the gradients of one op share, so it is computed once. The
# tape knows every shape, so the sum back over broadcast axes is planned once, not worked out per call.
_RULES = {}


def defrule(fun, rule, **helpers):
    """Give the replay of primitive ``fun`` its gradient as code (see ``_RULES``); ``helpers`` are names the
    expressions use."""
    _RULES[getattr(fun, "fun", fun)] = rule
    _HELPERS.update(helpers)


def _elementwise(*templates):
    """A rule from one expression per argument in {g}, {ans}, {x}, {y}, summed back as autograd does."""
    def rule(op, argnum, g, args, ans, let):
        if op.kwargs or len(op.args) != len(templates):
            return None
        template = templates[argnum]
        expr = _sum_back(template.format(g=g, ans=ans, x=args[0], y=args[-1]), np.shape(op.args[argnum]), op.shape)
        value = getattr(g, "value", None)
        if value is not None and template in ("{g}", "-{g}") and np.shape(op.args[argnum]) == op.shape:
            return Constant(expr, value if template == "{g}" else -value)
        return expr
    return rule


def _reshape_back(op, argnum, g, args, ans, let):
    if argnum != 0:
        return None
    expr = f"_reshape({g}, {np.shape(op.args[0])!r})"
    return Constant(expr, g.value) if isinstance(g, Constant) else expr


def _where_back(op, argnum, g, args, ans, let):
    if argnum == 1:
        return f"np.where({args[0]}, {g}, np.zeros({g}.shape))"
    return f"np.where({args[0]}, np.zeros({g}.shape), {g})" if argnum == 2 else None


def _basic_index(idx):
    parts = idx if isinstance(idx, tuple) else (idx,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, slice, np.integer)) for p in parts)


def _scatter(g, idx, shape):
    """The gradient of ``A[idx]`` for a basic index (no position twice): g placed in zeros of A's shape."""
    out = np.zeros(shape)
    out[idx] = g
    return out


def _scatter_add(out, g, idx):
    """``out + _scatter(g, idx, out.shape)``, in place: ``out`` is a gradient array the replay made itself
    and nothing else holds (the sum of each element is the same: 0 + g there, out + 0 elsewhere)."""
    out[idx] += g
    return out


class _Scattered(str):
    """The code of a ``_scatter``, keeping its parts: a second index of the same array (``beta[0]``, then
    ``beta[1]``) adds its gradient into the first one's array instead of into new zeros."""

    def __new__(cls, g, idx, shape):
        self = super().__new__(cls, f"_scatter({g}, {idx}, {shape!r})")
        self.g, self.idx = g, idx
        return self


def _index_back(op, argnum, g, args, ans, let):
    if argnum != 0 or not _basic_index(op.args[1]) or np.result_type(op.args[0]) != np.float64:
        return None
    return _Scattered(g, args[1], np.shape(op.args[0]))


for _fun, _templates in ((np.add, ("{g}", "{g}")), (np.subtract, ("{g}", "-{g}")),
                         (np.multiply, ("{y} * {g}", "{x} * {g}")),
                         (np.true_divide, ("{g} / {y}", "-{g} * {x} / {y}**2")), (np.negative, ("-{g}",)),
                         (np.exp, ("{ans} * {g}",)), (np.log, ("{g} / {x}",)), (np.log1p, ("{g} / ({x} + 1)",)),
                         (np.square, ("{g} * 2 * {x}",))):
    defrule(_fun, _elementwise(*_templates))
for _fun in (np.reshape, np.expand_dims, np.squeeze, np.ravel):
    defrule(_fun, _reshape_back)
defrule(np.where, _where_back)
defrule(ArrayBox.__getitem__, _index_back, _scatter=_scatter, _scatter_add=_scatter_add)


class _Op:
    """One recorded primitive: its raw function, arguments (constants, or ``links`` (argnum, slot) to
    earlier values), the links a gradient flows back along and the VJP maker (None: no gradient)."""

    __slots__ = ("fun", "args", "kwargs", "links", "back", "vjpmaker", "shape", "dtype")

    def __init__(self, node, links, back, vjpmaker):
        self.fun, self.args, self.kwargs, self.shape = node.fun.fun, node.args, node.kwargs, node.shape
        self.links, self.back, self.vjpmaker, self.dtype = links, back, vjpmaker, node.dtype


class Tape:
    """The recorded graph of a function of several arrays, as one straight-line Python function.

    Slot i < R holds input i, slot R + k the value of op k; ``out`` is the
    slot of the scalar differentiated, ``reported`` of the value returned.
    ``source`` is the generated code (forward, then backward): the
    recorded arithmetic, readable as it runs.
    """

    def __init__(self, ops, input_shapes, out, reported):
        self.ops, self.input_shapes, self.out, self.reported = ops, input_shapes, out, reported
        self.source, namespace = _generate(ops, input_shapes, out, reported)
        exec(compile(self.source, "<ppl.tape>", "exec"), namespace)  # noqa: S102 - code we generated
        self._replay = namespace["replay"]

    def value_and_grads(self, arrays):
        """The reported value at ``arrays`` and the scalar's gradient with respect to each array."""
        return self._replay(*arrays)

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


def _generate(ops, input_shapes, out, reported):
    """The source of ``replay(*inputs) -> (reported value, [gradient per input])`` and its namespace."""
    r = len(input_shapes)
    namespace = dict(_HELPERS)
    names = [f"v{i}" for i in range(r + len(ops))]
    lines = [f"def replay({', '.join(names[:r])}{',' if r == 1 else ''}):"]
    arguments = []
    for k, op in enumerate(ops):
        linked = dict(op.links)
        args = []
        for i, arg in enumerate(op.args):
            if i in linked:
                args.append(names[linked[i]])
            else:
                namespace[f"c{k}_{i}"] = arg
                args.append(f"c{k}_{i}")
        namespace[f"f{k}"] = _reshape if op.fun is np.reshape and not op.kwargs and len(args) == 2 else op.fun
        keywords = ""
        if op.kwargs:
            namespace[f"kw{k}"] = op.kwargs
            keywords = f", **kw{k}" if args else f"**kw{k}"
        lines.append(f"    {names[r + k]} = f{k}({', '.join(args)}{keywords})")
        arguments.append(args)
    grads = {out: Constant(f"g{out}", 1.0)}
    lines.append(f"    g{out} = np.ones(())")  # the scalar's own gradient (``record`` checks it is a scalar)

    owned = set()  # slots whose gradient is an array this code made and only it holds: added to in place

    def add(slot, expr):
        if slot in grads:
            if slot in owned and isinstance(expr, _Scattered):
                lines.append(f"    g{slot} = _scatter_add(g{slot}, {expr.g}, {expr.idx})")
            else:
                lines.append(f"    g{slot} = _add(g{slot}, {expr})")
            grads[slot] = f"g{slot}"
        else:
            if isinstance(expr, Constant) and slot >= r and ops[slot - r].dtype == np.float64:
                # one value everywhere, of a shape known now: made once, read-only, not at every replay
                namespace[f"k{slot}"] = _constant(ops[slot - r].shape, expr.value)
                expr = Constant(f"k{slot}", expr.value)
            lines.append(f"    g{slot} = {expr}")
            grads[slot] = Constant(f"g{slot}", expr.value) if isinstance(expr, Constant) else f"g{slot}"
            if isinstance(expr, _Scattered):
                owned.add(slot)

    for k in range(out - r, -1, -1):
        op, slot = ops[k], r + k
        if slot not in grads or op.vjpmaker is None:
            continue
        g, args = grads[slot], arguments[k]
        rule, temporaries = _RULES.get(op.fun), {}

        def let(expr, k=k, temporaries=temporaries):  # a subexpression the op's gradients share, computed once
            return temporaries.setdefault(expr, f"t{k}_{len(temporaries)}")

        exprs = [rule and rule(op, argnum, g, args, names[slot], let) for argnum, _ in op.back]
        if all(exprs):
            lines.extend(f"    {name} = {expr}" for expr, name in temporaries.items())
            for (_, parent), expr in zip(op.back, exprs):
                add(parent, expr)
            continue
        namespace[f"m{k}"] = op.vjpmaker
        argnums = tuple(argnum for argnum, _ in op.back)
        lines.append(f"    _g = tuple(m{k}({argnums!r}, {names[slot]}, ({', '.join(args)},), "
                     f"{'kw' + str(k) if op.kwargs else '{}'})({g}))")
        for j, (_, parent) in enumerate(op.back):
            add(parent, f"_dense(_g[{j}])")
    inputs = []
    for i, shape in enumerate(input_shapes):
        if i in grads:
            inputs.append(grads[i])
        else:
            namespace[f"shape{i}"] = shape
            inputs.append(f"np.zeros(shape{i})")
    lines.append(f"    return {names[reported]}, [{', '.join(inputs)}]")
    return "\n".join(_free_dead(_live(lines))) + "\n", namespace


def _constant(shape, value):
    array = np.full(shape, value)
    array.flags.writeable = False
    return array


def _live(lines):
    """The lines without the assignments nothing reads (every recorded function is pure): a constant
    gradient's array when every rule used its value instead, and the scalar it seeds."""
    needed, kept = set(_NAME.findall(lines[-1])), [lines[-1]]
    for line in reversed(lines[1:-1]):
        target, expr = line.split(" = ", 1)
        target = target.strip()
        if target not in needed:
            continue
        needed.discard(target)
        needed.update(_NAME.findall(expr))
        kept.append(line)
    return [lines[0]] + kept[::-1]


def _free_dead(lines):
    """``del`` each value and gradient after the last line that reads it: a batch of a thousand chains over
    thousands of rows makes every intermediate tens of megabytes, and autograd too frees them as it goes."""
    last = {}
    for i, line in enumerate(lines[1:-1], start=1):
        for name in _NAME.findall(line):
            last[name] = i
    returned, dead = set(_NAME.findall(lines[-1])), {}
    for name, i in last.items():
        if name not in returned:
            dead.setdefault(i, []).append(name)
    out = [lines[0]]
    for i, line in enumerate(lines[1:-1], start=1):
        out.append(line)
        if i in dead:
            out.append(f"    del {', '.join(sorted(dead[i]))}")
    return out + [lines[-1]]


_NAME = re.compile(r"\b(?:[vg]\d+|t\d+_\d+|_g)\b")


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
        ops.append(_Op(node, links, back, vjpmaker))
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
