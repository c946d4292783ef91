"""The rule of the restricted-architecture MLM task, as a list of PyTorch operator (ATen) names.

The scorer does not run the agent's forward pass on held-out data: it captures the forward pass as
a graph of ATen operators (`graph.capture`, run as the agent on an input of the scoring shape),
checks every operator against `ALLOWED` (and the dtype rule below), and evaluates that graph
itself. ATen is the level every PyTorch path reaches (Python functions, `torch.ops.aten`, `_VF`,
`torch.nn.functional` internals, custom autograd Functions), so what escapes a `__torch_function__`
guard (`torch._C.DisableTorchFunction()`) is still a named operator here. Work that leaves the
tensor world (Python numbers, numpy, ctypes, other libraries, compiled kernels) is not in the graph
at all: at most it leaves a fixed tensor computed from the capture input, never from held-out data.

Allowed, as the statement says: Linear and Embedding, matmul/einsum/sum, addition and
multiplication (subtraction and negation too), relu, indexing and reshaping, fixed tensors.
"""

from __future__ import annotations

# Operator packets (the name before the overload), grouped as the statement groups them.
LINEAR_ALGEBRA = {"embedding", "mm", "bmm", "addmm", "baddbmm", "addbmm", "matmul", "linear", "t", "dot", "mv",
                  "addmv", "einsum"}
ARITHMETIC = {"add", "sub", "rsub", "mul", "neg", "sum"}
NONLINEARITY = {"relu"}
# Views and reshapes: they move no numbers (the memory estimate counts them as free).
VIEWS = {"view", "_unsafe_view", "reshape", "_reshape_alias", "expand", "as_strided", "squeeze", "unsqueeze",
         "permute", "transpose", "select", "slice", "narrow", "alias", "detach", "unfold", "diagonal",
         "split", "split_with_sizes", "chunk", "unbind", "view_as", "expand_as", "movedim", "swapaxes",
         "flatten", "unflatten"}
INDEXING = {"index", "_unsafe_index", "index_select", "gather", "take_along_dim", "cat", "concat", "stack",
            "flip", "roll", "repeat", "tile", "constant_pad_nd", "select_scatter", "slice_scatter",
            "index_put", "scatter", "clone", "contiguous", "copy", "_to_copy", "lift_fresh_copy", "lift_fresh"}
FIXED_TENSORS = {"zeros", "ones", "full", "zeros_like", "ones_like", "full_like", "new_zeros", "new_ones",
                 "new_full", "arange", "eye", "scalar_tensor", "fill", "zero"}

ALLOWED = frozenset(LINEAR_ALGEBRA | ARITHMETIC | NONLINEARITY | VIEWS | INDEXING | FIXED_TENSORS)

# Overloads that write into a given tensor or take a reduction: never in a functional graph of
# allowed operations (scatter's `reduce=` and `value_reduce` forms would compute a max or a mean).
FORBIDDEN_OVERLOADS = ("out", "reduce", "value_reduce", "two_out", "values", "Scalar_out", "Tensor_out")

# Element types a graph may compute in; complex and quantised types are not plain numbers.
DTYPES = frozenset({"float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
                    "bool"})
FLOATING = frozenset({"float16", "bfloat16", "float32", "float64"})
# The layouts and memory formats an allowed operator may be given.
LAYOUTS = frozenset({"strided"})
MEMORY_FORMATS = frozenset({"contiguous_format", "preserve_format", "channels_last"})


def op_packet(target: str) -> tuple[str, str, str]:
    """Split an operator's name: `aten.addmm.default` -> ("aten", "addmm", "default")."""
    parts = target.split(".")
    if len(parts) != 3:
        raise ValueError(f"`{target}` is not an operator name of the form namespace.name.overload")
    return parts[0], parts[1], parts[2]


def forbidden_reason(target: str) -> str | None:
    """Why operator `target` is not allowed in the forward pass, or None when it is."""
    try:
        namespace, packet, overload = op_packet(target)
    except ValueError as exc:
        return str(exc)
    if namespace != "aten":
        return f"`{target}` is not a core PyTorch operator (only aten operators can be checked)"
    if packet.endswith("_") or overload in FORBIDDEN_OVERLOADS:
        return f"`{target}` writes into a tensor or reduces by max/mean, which the graph may not do"
    if packet not in ALLOWED:
        return (f"the forward pass uses `{packet}` ({target}), which is not an allowed primitive (allowed: Linear, "
                f"Embedding, matmul/einsum/sum, + - and *, relu, indexing and reshaping, fixed tensors)")
    return None


def cast_reason(target: str, input_dtypes: list[str], output_dtype: str) -> str | None:
    """The dtype rule: rounding a float to an integer, or making a boolean from a number, is a
    nonlinearity (a comparison), whatever operator does it."""
    if output_dtype not in FLOATING and any(d in FLOATING for d in input_dtypes):
        return f"`{target}` turns floating-point values into {output_dtype} (rounding is a nonlinearity)"
    if output_dtype == "bool" and any(d != "bool" for d in input_dtypes):
        return f"`{target}` makes booleans from numbers (a comparison)"
    return None
