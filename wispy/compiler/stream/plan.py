"""The streaming plan: what each stateful layer keeps, and the whole plan of a model."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from wispy.compiler.stream.trace import LIMIT_BIG, Stream


@dataclass
class ConvAct:
    kind: str            # "conv", "max", "avg"
    cache: int           # C: frames of context carried (negative: frames dropped from the chunk)
    state: Optional[int]
    site: Optional[int]  # mask site for the input, or None
    stride: int
    dilation: int = 1
    groups: int = 1
    kernel: int = 1
    weight_from_args: bool = False  # F.conv1d: weight and bias are arguments


@dataclass
class RNNAct:
    states: list
    site: Optional[int]


@dataclass
class SliceAct:
    index: Any           # the index with the time entry made whole
    delay_state: Optional[int]
    delay: int


@dataclass
class PadAct:
    pad: Optional[tuple]  # the padding of the other axes, or None when only time was padded


@dataclass
class StreamPlan:
    """What the step function and the session need to know about a streamed model."""
    input_axis: int
    frame_multiple: int                 # chunks hold a multiple of this many input frames
    output: Stream
    state_shapes: list = field(default_factory=list)
    sites: list = field(default_factory=list)  # Streams whose frames outside [0, length) are zeroed

    @property
    def output_axis(self) -> int:
        return self.output.axis

    @property
    def latency_frames(self) -> int:
        """Input frames by which the output lags: the model's lookahead (plus stride rounding)."""
        return self.output.delay * self.output.rate

    def limits(self, pos: int, total: Optional[int]):
        """The [lo, hi) chunk-frame range of each mask site for a chunk starting at input
        frame `pos`, the utterance having `total` frames (None: not known yet)."""
        rows = []
        for s in self.sites:
            base = pos // s.rate
            lo = s.delay - base
            hi = LIMIT_BIG if total is None else s.delay + s.length(total) - base
            rows.append((min(max(lo, -LIMIT_BIG), LIMIT_BIG), min(max(hi, -LIMIT_BIG), LIMIT_BIG)))
        return np.asarray(rows, np.float32).reshape(len(self.sites), 2)

    def frames_needed(self, total: int) -> int:
        """Input frames (real then zeros) to feed so that the whole output has come out."""
        o = self.output
        need = o.rate * (o.delay + o.length(total))
        m = self.frame_multiple
        return max(-(-need // m) * m, -(-total // m) * m)
