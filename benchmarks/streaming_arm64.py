"""What streaming costs a convolutional model, in arm64 instructions counted under qemu
(deterministic, whatever else the machine runs): one chunk of each size, and a whole
utterance streamed in chunks (the flush included) against the whole-utterance module.

    .venv/bin/python benchmarks/streaming_arm64.py [--model wav2letter-small] [--chunks 2,10,16,32,64]
"""
import argparse
import tempfile
from pathlib import Path

import numpy as np

import wispy
from wispy.models import ZOO
from wispy.models.acoustic import example_input
from wispy.runtime.arm64 import count_instructions_arm64


def count(vmfb, inputs):
    return count_instructions_arm64(vmfb, inputs, iterations=2, warmup=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="wav2letter-small", help="a zoo name")
    ap.add_argument("--chunks", default="2,10,16,32,64", help="chunk sizes in frames")
    a = ap.parse_args()
    model, x = ZOO[a.model][0](), example_input(a.model)
    xn = x.numpy()
    work = Path(tempfile.mkdtemp(prefix="wispy-stream-arm64-"))
    sm = wispy.compile_streaming(model, x, target="arm64", progress=False)
    whole_vmfb = wispy.compile_model(model, (x,), target="arm64", progress=False).save(work / "whole.vmfb")
    step_vmfb = sm.save(work / "step.vmfb")
    plan, ax, frames = sm.plan, sm.time_axis, xn.shape[sm.time_axis]
    whole = count(whole_vmfb, [xn])
    print(f"{a.model}: whole utterance ({frames} frames) {whole / 1e6:.1f} M instructions, "
          f"{whole / frames / 1e3:.0f} k per frame; lookahead {sm.latency_frames} frames")
    states = sm.initial_state()
    for chunk in (int(c) for c in a.chunks.split(",")):
        if chunk % sm.frame_multiple:
            print(f"chunk {chunk}: not a multiple of the stride {sm.frame_multiple}, skipped")
            continue
        start = frames // 4 // sm.frame_multiple * sm.frame_multiple  # a chunk inside the utterance
        piece = np.ascontiguousarray(np.take(xn, range(start, start + chunk), axis=ax))
        step = count(step_vmfb, [piece, plan.limits(start, None), *states])
        steps, fed = frames // chunk, frames // chunk * chunk
        tail = plan.frames_needed(frames) - fed  # the last partial chunk and the flush, in one call
        shape = list(xn.shape)
        shape[ax] = tail
        flush = count(step_vmfb, [np.zeros(shape, np.float32), plan.limits(fed, frames), *states])
        total = steps * step + flush
        print(f"chunk {chunk}: {step / 1e6:.2f} M instructions ({step / chunk / 1e3:.0f} k per frame); "
              f"the utterance in {steps} chunks + flush ({tail} frames, {flush / 1e6:.1f} M): "
              f"{total / 1e6:.1f} M, {total / whole:.2f}x the whole utterance")


if __name__ == "__main__":
    main()
