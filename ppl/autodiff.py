"""Value and gradient with respect to several arrays in one reverse pass.

``autograd.grad`` differentiates with respect to one argument; packing many
parameters into a dict or tuple makes every read of an entry allocate zeros
for all the others on the way back (the container's VJP), which grows with
the number of entries. Here each array gets its own root node on one tape,
so the backward pass touches only what was used.
"""
import numpy as np
from autograd.core import VJPNode, add_outgrads
from autograd.tracer import isbox, new_box, toposort, trace_stack


def value_and_grads(fn, arrays):
    """Return ``fn(*arrays)`` (a scalar) and the list of its gradients w.r.t. each array.

    An array the value does not depend on gets a zero gradient.
    """
    roots = [VJPNode.new_root() for _ in arrays]
    with trace_stack.new_trace() as tape:
        out = fn(*[new_box(a, tape, root) for a, root in zip(arrays, roots)])
        if not (isbox(out) and out._trace == tape):
            return out, [np.zeros_like(a) for a in arrays]
        value, end_node = out._value, out._node
    if np.ndim(value) != 0:
        raise ValueError(f"value_and_grads: fn must return a scalar, got shape {np.shape(value)}")
    position = {id(root): i for i, root in enumerate(roots)}
    grads = [None] * len(arrays)
    outgrads = {end_node: (np.ones_like(value), False)}
    for node in toposort(end_node):
        g = outgrads.pop(node)[0]
        i = position.get(id(node))
        if i is not None:
            grads[i] = g
            continue
        for parent, parent_grad in zip(node.parents, node.vjp(g)):
            outgrads[parent] = add_outgrads(outgrads.get(parent), parent_grad)
    return value, [np.zeros_like(a) if g is None else g for a, g in zip(arrays, grads)]
