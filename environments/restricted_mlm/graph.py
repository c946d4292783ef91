"""A forward pass as data: captured from the agent's model, checked, and evaluated by the scorer.

`capture` (run as the agent, in `runner.py`) traces `model(tokens)` with `torch.fx`'s `make_fx` at
the operator (ATen) level, with mutations turned into functional operators, and writes
`graph.json` (the operators in order, their arguments) and `constants.safetensors` (every fixed
tensor: parameters, buffers, precomputed constants). The file format is ours and small on purpose:
the scorer reads nothing but JSON and safetensors from the agent.

`load` (the scorer's side) checks the structure, every operator against `ops.ALLOWED` and every
argument's type, then runs the graph once on meta tensors: shapes, the dtype rule and the memory
it needs are known before any number is computed. `Graph.run` evaluates it with plain ATen calls.

Whatever the agent writes into these files, what the scorer evaluates is a fixed computation made
of allowed operators and fixed tensors, which is what the task asks for: so a forged graph is fine.
"""

from __future__ import annotations

import json
import math
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import ops

FORMAT = "rebench-mlm-graph/1"
GRAPH_FILE, CONSTANTS_FILE = "graph.json", "constants.safetensors"


class GraphError(ValueError):
    """The submission's graph breaks a rule or the file format; the message says which."""


# ---- the agent's side: capture --------------------------------------------------------------------

def capture(model: torch.nn.Module, tokens: torch.Tensor, out_dir: Path) -> dict[str, Any]:
    """Trace `model(tokens)` and write the graph and its constants into `out_dir`."""
    import inspect

    from safetensors.torch import save_file
    from torch.fx.experimental.proxy_tensor import make_fx
    from torch.func import functionalize

    options = {"tracing_mode": "real"}
    if "record_stack_traces" in inspect.signature(make_fx).parameters:
        options["record_stack_traces"] = True
    with torch.no_grad():
        gm = make_fx(functionalize(lambda t: model(t), remove="mutations"), **options)(tokens)
    nodes, constants = [], {}
    for node in gm.graph.nodes:
        entry: dict[str, Any] = {"name": node.name}
        if node.op == "placeholder":
            entry["kind"] = "input"
        elif node.op == "get_attr":
            entry["kind"] = "constant"
            constants[node.name] = getattr(gm, node.target).detach().contiguous().cpu().clone()
        elif node.op == "call_function":
            entry.update(kind="call", target="getitem" if node.target is operator.getitem else str(node.target),
                         args=_encode(node.args), kwargs=_encode(dict(node.kwargs)), where=_where(node))
        elif node.op == "output":
            entry.update(kind="output", args=_encode(node.args[0]))
        else:
            raise GraphError(f"the traced graph has a `{node.op}` node, which no forward pass of tensors makes")
        nodes.append(entry)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / GRAPH_FILE).write_text(json.dumps({"format": FORMAT, "nodes": nodes}))
    save_file(constants, str(out_dir / CONSTANTS_FILE))
    return {"nodes": len(nodes), "constants": len(constants),
            "constant_bytes": sum(t.numel() * t.element_size() for t in constants.values())}


def _where(node) -> str:
    """The last line of the agent's code that made this operator (for error messages)."""
    trace = node.meta.get("stack_trace") or ""
    lines = [line.strip() for line in trace.strip().splitlines() if line.strip()]
    return " | ".join(lines[-2:])[:300]


def _encode(value: Any) -> Any:
    import torch.fx

    if isinstance(value, torch.fx.Node):
        return {"ref": value.name}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise GraphError(f"the forward pass uses the constant {value}, which is not a finite number")
        return value
    if isinstance(value, torch.dtype):
        return {"dtype": str(value).removeprefix("torch.")}
    if isinstance(value, torch.device):
        return {"device": value.type}
    if isinstance(value, torch.layout):
        return {"layout": str(value).removeprefix("torch.")}
    if isinstance(value, torch.memory_format):
        return {"memory_format": str(value).removeprefix("torch.")}
    raise GraphError(f"the traced graph holds a {type(value).__name__} argument, which the scorer cannot read")


# ---- the scorer's side: load and check --------------------------------------------------------------

@dataclass
class Step:
    name: str
    op: Any  # an OpOverload, or operator.getitem
    target: str
    args: Any  # decoded, with ("ref", name) tuples for values
    kwargs: dict[str, Any]
    where: str
    frees: tuple[str, ...] = ()  # values last used by this step
    places: bool = False  # takes a `device` argument: the scorer's device is given, whatever the graph says


@dataclass
class Graph:
    input_name: str
    constants: dict[str, torch.Tensor]
    steps: list[Step]
    output: str
    peak_bytes: int  # what one evaluation holds at most, from the meta run (views counted free)

    def to(self, device: str) -> Graph:
        self.constants = {k: v.to(device) for k, v in self.constants.items()}
        return self

    def run(self, tokens: torch.Tensor, device: str) -> torch.Tensor:
        """Evaluate the graph on `tokens` (values freed after their last use)."""
        values: dict[str, Any] = {**self.constants, self.input_name: tokens}
        for step in self.steps:
            values[step.name] = step.op(*_resolve(step.args, values, device), **_kwargs(step, values, device))
            for name in step.frees:
                if name not in self.constants:
                    values.pop(name, None)
        return values[self.output]


def load(directory: Path, *, batch: int, seq: int, vocab: int, max_constant_bytes: int,
         max_peak_bytes: int) -> Graph:
    """Read and check a captured graph; raises GraphError saying what is wrong."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    raw = _read_json(directory / GRAPH_FILE)
    if not isinstance(raw, dict) or raw.get("format") != FORMAT or not isinstance(raw.get("nodes"), list):
        raise GraphError(f"{GRAPH_FILE} is not a graph of format {FORMAT}")
    constants_path = directory / CONSTANTS_FILE
    if not constants_path.is_file():
        raise GraphError(f"{CONSTANTS_FILE} is missing")
    size = constants_path.stat().st_size
    if size > max_constant_bytes + 1_000_000:
        raise GraphError(f"the model's fixed tensors take {size:,} bytes, more than the {max_constant_bytes:,} "
                         "this size allows")
    try:
        constants = load_file(str(constants_path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise GraphError(f"{CONSTANTS_FILE} could not be read: {exc}") from None
    for name, tensor in constants.items():
        if str(tensor.dtype).removeprefix("torch.") not in ops.DTYPES:
            raise GraphError(f"the fixed tensor {name} has dtype {tensor.dtype}, which is not a plain number type")

    seen: set[str] = set()
    input_name = output = None
    steps: list[Step] = []
    constant_names: set[str] = set()
    for node in raw["nodes"]:
        if not isinstance(node, dict) or not isinstance(node.get("name"), str) or node["name"] in seen:
            raise GraphError(f"{GRAPH_FILE} has a node without a unique name: {str(node)[:200]}")
        name, kind = node["name"], node.get("kind")
        if output is not None:
            raise GraphError(f"{GRAPH_FILE} has nodes after its output")
        if kind == "input":
            if input_name is not None:
                raise GraphError("the forward pass must take exactly one input (the token ids)")
            input_name = name
        elif kind == "constant":
            if name not in constants:
                raise GraphError(f"the fixed tensor {name} is missing from {CONSTANTS_FILE}")
            constant_names.add(name)
        elif kind == "call":
            steps.append(_step(node, seen))
        elif kind == "output":
            ref = _decode(node.get("args"), seen)
            if not (isinstance(ref, tuple) and ref[0] == "ref"):
                raise GraphError("the forward pass must return one tensor (the logits)")
            output = ref[1]
        else:
            raise GraphError(f"{GRAPH_FILE} has a node of unknown kind {str(kind)[:40]!r}")
        seen.add(name)
    if input_name is None or output is None:
        raise GraphError("the graph has no input or no output")
    if set(constants) != constant_names:
        raise GraphError(f"{CONSTANTS_FILE} holds tensors the graph does not use: {sorted(set(constants) - constant_names)[:5]}")
    if sum(t.numel() * t.element_size() for t in constants.values()) > max_constant_bytes:
        raise GraphError(f"the model's fixed tensors take more than the {max_constant_bytes:,} bytes this size allows")
    graph = Graph(input_name, constants, steps, output, 0)
    _mark_last_uses(graph)
    graph.peak_bytes = _check_on_meta(graph, batch, seq, vocab, max_peak_bytes)
    return graph


def _read_json(path: Path) -> Any:
    def no_constant(text: str):
        raise GraphError(f"{path.name} holds {text}, which is not JSON")

    try:
        return json.loads(path.read_text(), parse_constant=no_constant)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise GraphError(f"{path.name} could not be read as JSON: {str(exc)[:200]}") from None


def _step(node: dict, seen: set[str]) -> Step:
    target = node.get("target")
    if not isinstance(target, str):
        raise GraphError(f"the graph node {node['name']} names no operator")
    if target == "getitem":
        op = operator.getitem
    else:
        reason = ops.forbidden_reason(target)
        if reason:
            raise GraphError(reason + _at(node))
        _, packet, overload = ops.op_packet(target)
        try:
            op = getattr(getattr(torch.ops.aten, packet), overload)
        except (AttributeError, RuntimeError):
            raise GraphError(f"`{target}` is not an operator of this PyTorch") from None
    args, kwargs = _decode(node.get("args", []), seen), _decode_kwargs(node.get("kwargs", {}), seen)
    if not isinstance(args, list):
        raise GraphError(f"the graph node {node['name']} has malformed arguments")
    where = node.get("where") if isinstance(node.get("where"), str) else ""
    places = op is not operator.getitem and any(a.name == "device" and a.kwarg_only for a in op._schema.arguments)
    return Step(node["name"], op, target, args, kwargs, where[:300], places=places)


def _at(node: dict) -> str:
    where = node.get("where")
    return f" (at {where[:300]})" if isinstance(where, str) and where else ""


def _decode(value: Any, seen: set[str]) -> Any:
    """JSON arguments -> Python values, with ("ref", name) for values computed earlier."""
    if isinstance(value, list):
        return [_decode(v, seen) for v in value]
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -2**63 <= value < 2**63:  # int64, as ATen takes it (slice ends are 2**63 - 1)
            raise GraphError(f"the graph passes the integer {str(value)[:40]}, which is out of range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise GraphError(f"the graph passes the number {value}, which is not finite")
        return value
    if isinstance(value, str):
        raise GraphError(f"the graph passes the string {value[:40]!r} to an operator, which no allowed operator takes")
    if isinstance(value, dict) and len(value) == 1:
        (key, item), = value.items()
        if isinstance(item, str):
            if key == "ref":
                if item not in seen:
                    raise GraphError(f"the graph uses the value {item[:40]!r} before it is computed")
                return ("ref", item)
            if key == "dtype" and item in ops.DTYPES:
                return getattr(torch, item)
            if key == "device":
                return ("device",)  # the scorer's device, whatever the capture ran on
            if key == "layout" and item in ops.LAYOUTS:
                return getattr(torch, item)
            if key == "memory_format" and item in ops.MEMORY_FORMATS:
                return getattr(torch, item)
    raise GraphError(f"the graph holds an argument the scorer does not accept: {str(value)[:100]}")


def _decode_kwargs(value: Any, seen: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and k.isidentifier() for k in value):
        raise GraphError(f"the graph holds keyword arguments the scorer does not accept: {str(value)[:100]}")
    return {k: _decode(v, seen) for k, v in value.items()}


def _resolve(value: Any, values: dict[str, Any], device: str) -> Any:
    if isinstance(value, tuple):
        return values[value[1]] if value[0] == "ref" else torch.device(device)
    if isinstance(value, list):
        return [_resolve(v, values, device) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, values, device) for k, v in value.items()}
    return value


def _kwargs(step: Step, values: dict[str, Any], device: str) -> dict[str, Any]:
    """The step's keyword arguments; a factory (zeros, arange, _to_copy, ...) allocates on `device`
    whether or not the graph names one, so the memory check on meta tensors allocates nothing."""
    kwargs = _resolve(step.kwargs, values, device)
    if step.places:
        kwargs["device"] = torch.device(device)
        if kwargs.get("pin_memory"):
            kwargs["pin_memory"] = False
    return kwargs


def _refs(value: Any) -> list[str]:
    if isinstance(value, tuple):
        return [value[1]] if value[0] == "ref" else []
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    if isinstance(value, dict):
        return [r for v in value.values() for r in _refs(v)]
    return []


def _mark_last_uses(graph: Graph) -> None:
    last: dict[str, int] = {}
    for i, step in enumerate(graph.steps):
        for name in _refs(step.args) + _refs(step.kwargs):
            last[name] = i
    frees: dict[int, list[str]] = {}
    for name, i in last.items():
        if name != graph.output:
            frees.setdefault(i, []).append(name)
    for i, step in enumerate(graph.steps):
        step.frees = tuple(frees.get(i, ()))


def _dtype_name(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def _check_on_meta(graph: Graph, batch: int, seq: int, vocab: int, max_peak_bytes: int) -> int:
    """Run the graph on meta tensors: the dtype rule, the output's shape, the peak of memory held."""
    values: dict[str, Any] = {k: torch.empty_like(v, device="meta") for k, v in graph.constants.items()}
    values[graph.input_name] = torch.empty((batch, seq), dtype=torch.int64, device="meta")
    held: dict[str, int] = {}
    peak = 0
    for step in graph.steps:
        args, kwargs = _resolve(step.args, values, "meta"), _kwargs(step, values, "meta")
        try:
            result = step.op(*args, **kwargs)
        except Exception as exc:
            raise GraphError(f"`{step.target}` fails on its arguments or needs the data to know its shape "
                             f"(boolean-mask indexing does; use index tensors): {type(exc).__name__}: "
                             f"{str(exc)[:200]}" + _at({"where": step.where})) from None
        outputs = [result] if isinstance(result, torch.Tensor) else list(result) if isinstance(result, (list, tuple)) else []
        inputs = [t for t in _flat(args) + _flat(kwargs) if isinstance(t, torch.Tensor)]
        for out in outputs:
            if isinstance(out, torch.Tensor):
                reason = ops.cast_reason(step.target, [_dtype_name(t) for t in inputs], _dtype_name(out))
                if reason and step.op is not operator.getitem:
                    raise GraphError(reason + _at({"where": step.where}))
        values[step.name] = result
        packet = step.target.split(".")[1] if step.op is not operator.getitem else "getitem"
        if packet not in ops.VIEWS and packet != "getitem":
            held[step.name] = sum(o.numel() * o.element_size() for o in outputs if isinstance(o, torch.Tensor))
        peak = max(peak, sum(held.values()))
        if peak > max_peak_bytes:
            raise GraphError(f"one forward pass would hold {peak:,} bytes of intermediate tensors, more than the "
                             f"{max_peak_bytes:,} this size allows" + _at({"where": step.where}))
        for name in step.frees:
            held.pop(name, None)
            if name not in graph.constants:
                values.pop(name, None)
    out = values.get(graph.output)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (batch, seq, vocab):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise GraphError(f"forward must return logits of shape {(batch, seq, vocab)} (batch, seq, vocab), got {got}")
    if not out.is_floating_point():
        raise GraphError(f"forward must return floating-point logits, got {out.dtype}")
    return peak


def _flat(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _flat(v)]
    if isinstance(value, dict):
        return [x for v in value.values() for x in _flat(v)]
    return [value]
