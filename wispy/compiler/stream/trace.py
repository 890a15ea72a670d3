"""Tracing a model into a graph of layer calls and running it; describing nodes for errors."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import fx, nn
from torch.fx.node import Node, map_arg

from wispy.errors import WispyError


# Host-computed limits are float32 (exact below 2^24) and clamped to this range.
LIMIT_BIG = float(1 << 24)
# Utterance lengths the graph is traced at to find each value's time axis and length (the
# longer pair for models whose receptive field exceeds the first).
TRACE_LENGTHS = ((256, 320), (2048, 2560))


def stream_error(msg: str) -> WispyError:
    return WispyError(f"streaming: {msg}")


@dataclass(frozen=True)
class Stream:
    """How a value's frames in the stream relate to its whole-utterance frames."""
    axis: int                                  # time axis of the value
    rate: int                                  # model-input frames per frame of this value
    delay: int                                 # stream frame i = whole-utterance frame i - delay
    length: Callable[[int], int] = field(compare=False)  # whole-utterance frames for T input frames
    clean: bool = False                        # frames outside [0, length) are zero
    pad: tuple = (0, 0)                        # zero padding over time pending for a convolution


@dataclass(frozen=True)
class GlobalValue:
    """A value that needs the whole utterance (a mean over time, an RNN's final state)."""
    reason: str


DYNAMIC_SIZE = "dynamic-size"  # an int read from a time dimension (allowed in shapes only)


# ---------------------------------------------------------------------------------------------
# Tracing and running the graph

class _Tracer(fx.Tracer):
    def __init__(self):
        super().__init__()
        self.record_stack_traces = True


class _Root(nn.Module):
    """Wraps a model that is a single torch.nn layer (fx traces into roots)."""

    def __init__(self, m: nn.Module):
        super().__init__()
        self.m = m

    def forward(self, x):
        y = self.m(x)
        return y[0] if isinstance(self.m, nn.RNNBase) else y


def trace(model: nn.Module) -> tuple[nn.Module, fx.Graph]:
    root = model
    if type(model).__module__.startswith("torch.nn") and not isinstance(model, nn.Sequential):
        root = _Root(model)
    try:
        graph = _Tracer().trace(root)
    except Exception as e:
        raise stream_error(f"torch.fx cannot trace {type(model).__name__}.forward ({type(e).__name__}: "
                   f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}); streaming needs a forward "
                   "without Python control flow on tensor values") from e
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise stream_error(f"{type(model).__name__}.forward takes {len(placeholders)} inputs; streaming feeds one "
                   "(the features)")
    return root, graph


def _fetch_attr(root: nn.Module, target: str):
    obj = root
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def call_node(root: nn.Module, node: Node, args, kwargs):
    if node.op == "call_module":
        return root.get_submodule(node.target)(*args, **kwargs)
    if node.op == "call_function":
        return node.target(*args, **kwargs)
    if node.op == "call_method":
        return getattr(args[0], node.target)(*args[1:], **kwargs)
    if node.op == "get_attr":
        return _fetch_attr(root, node.target)
    raise AssertionError(node.op)


def first_output(node: Node):
    out = node.args[0]
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out


def run_plain(root: nn.Module, graph: fx.Graph, x: torch.Tensor) -> dict:
    env = {}
    for node in graph.nodes:
        if node.op == "placeholder":
            env[node] = x
        elif node.op == "output":
            break
        else:
            args = map_arg(node.args, lambda n: env[n])
            kwargs = map_arg(node.kwargs, lambda n: env[n])
            env[node] = call_node(root, node, args, kwargs)
    return env


def shape_of(v):
    if isinstance(v, torch.Tensor):
        return tuple(v.shape)
    if isinstance(v, (tuple, list)):
        return tuple(shape_of(e) for e in v)
    if isinstance(v, (int, torch.Size)):
        return v
    return None


# ---------------------------------------------------------------------------------------------
# Describing nodes for error messages

def _where(node: Node) -> str:
    """' at file.py:LINE' of the innermost frame of the user's code that made `node`."""
    loc = ""
    for line in (node.stack_trace or "").splitlines():
        line = line.strip()
        if line.startswith("File ") and "/torch/" not in line:
            try:
                fname = line.split('"')[1].rsplit("/", 1)[-1]
                lineno = line.split("line ")[1].split(",")[0]
                loc = f" at {fname}:{lineno}"
            except IndexError:
                pass
    return loc


def describe(root: nn.Module, node: Node) -> str:
    if node.op == "call_module":
        m = root.get_submodule(node.target)
        name = node.target[2:] if isinstance(root, _Root) and node.target.startswith("m.") else node.target
        name = "" if name == "m" and isinstance(root, _Root) else name
        return f"layer '{name}' ({m})" if name else f"the model ({m})"
    if node.op == "call_function":
        return f"'{getattr(node.target, '__name__', str(node.target))}'{_where(node)}"
    if node.op == "call_method":
        return f"'.{node.target}()'{_where(node)}"
    return f"'{node.name}'"
