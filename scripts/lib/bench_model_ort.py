"""Times onnxruntime on one model for scripts/bench-model: 2 intra-op threads, one warm-up run,
then RUNS timed runs. Usage: bench_model_ort.py MODEL INPUT.npy RUNS OUTPUT.npy
Prints `median_ms=… p90_ms=…` and saves the first output."""
import sys
import time

import numpy as np
import onnxruntime as ort

model, data, runs, output = sys.argv[1], np.load(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
options = ort.SessionOptions()
options.intra_op_num_threads = 2
options.inter_op_num_threads = 1
options.log_severity_level = 3
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name
result = session.run(None, {name: data})[0]
np.save(output, result)
times = []
for _ in range(runs):
    start = time.perf_counter()
    session.run(None, {name: data})
    times.append((time.perf_counter() - start) * 1000)
times.sort()
print(f"median_ms={times[len(times) // 2]:.3f} p90_ms={times[min(len(times) - 1, int(np.ceil(len(times) * 0.9)) - 1)]:.3f}")
