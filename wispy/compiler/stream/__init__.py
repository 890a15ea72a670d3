"""Streaming any model over time: a step function that carries the context each layer needs.

`compile_streaming` (streaming.py) turns a model into a step function
`main(chunk, limits, *states) -> (outputs, *new_states)`. This package builds that function:

1. **Trace.** `torch.fx` traces the model's forward into a graph of layer calls (nn
   modules are leaves) and tensor functions.
2. **Analyse.** The graph runs twice, at two utterance lengths; the one dimension whose
   size changes is the time axis of each value. Every node is then checked and described
   by a `Stream`: its time axis, its *rate* (input frames per frame: the product of the
   strides before it), its *delay* (stream frame `i` holds whole-utterance frame
   `i - delay`) and its whole-utterance length as a function of the input length (checked
   against the two traced lengths).
   - Frame-local operations (activations, eval BatchNorm, per-frame Linear, softmax over
     features, transposes, reshapes that keep time whole, slicing of other axes) pass the
     stream through.
   - A `Conv1d` (and `MaxPool1d`/`AvgPool1d`) over time keeps a cache of its last input
     frames as a state: it convolves `[cache, chunk]` without padding. The cache length
     `C` lies in `[extent - stride, extent - 1]` (so a chunk of `n` frames gives `n / stride`
     outputs) and is picked so that its windows fall where the whole-utterance windows do
     (the stride phase). The initial cache is zeros: the left padding. The output is late
     by the layer's lookahead, `delay_out = (C + delay_in - pad_left) / stride`.
   - `nn.GRU`/`nn.LSTM` carry their state; frames before the utterance starts (a delayed
     input) leave the state unchanged.
   - Where values of different delays meet (residual adds, skip connections,
     concatenations) the earlier one goes through a delay line (a state of `d` frames).
   - A zero `F.pad` over time becomes padding of the convolution it feeds; a slice
     `x[..., a:-b]` over time shifts the delay (and delays `b` frames, since a frame is
     known to lie before the end only `b` frames later).
   - Anything else that touches time (means over time, bidirectional RNNs, attention, a
     final RNN state) is refused, naming the layer.
3. **Masks.** Frames a stream holds before its utterance starts or after it ends are
   garbage (bias, partial windows); the whole-utterance model sees zero padding there.
   Before every padded convolution whose input is not known to be zero there, frames
   outside `[0, length)` are zeroed. Where they are depends on how many frames came
   before and, once the utterance ends, on its length: the session computes them on the
   host and passes them in `limits` (one row `[lo, hi)` per masked value, in chunk-frame
   units).
4. **Flush.** At the end the session feeds zero frames (the right padding) until every
   output frame of the whole utterance has come out, and drops the frames outside
   `[0, length)` of the output stream. The concatenated outputs then equal the
   whole-utterance output.

Chunks given to the step function hold a multiple of the total stride (`frame_multiple`);
the session keeps the remainder of a chunk for the next call.
"""
from wispy.compiler.stream.plan import StreamPlan  # noqa: F401
from wispy.compiler.stream.step import build_step  # noqa: F401
from wispy.compiler.stream.trace import Stream  # noqa: F401


