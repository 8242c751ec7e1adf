"""onnxruntime in-process on one model, the floor for scripts/bench-inference: the median latency
of a batch of 1 and the throughput of batches of 1, 8 and 16 rows (rows/s), 2 intra-op threads.
Usage: bench_inference_ort.py MODEL.onnx INPUT_NAME C,H,W RUNS -> one key=value line."""
import sys
import time

import numpy as np
import onnxruntime as ort

path, name, row_shape, runs = sys.argv[1], sys.argv[2], [int(d) for d in sys.argv[3].split(",")], int(sys.argv[4])
session_options = ort.SessionOptions()
session_options.intra_op_num_threads = 2
session = ort.InferenceSession(path, session_options, providers=["CPUExecutionProvider"])
fields = []
for batch in (1, 8, 16):
    x = np.random.default_rng(batch).random([batch] + row_shape, dtype=np.float32)
    for _ in range(3):
        session.run(None, {name: x})
    times = []
    for _ in range(max(3, runs // batch)):
        started = time.perf_counter()
        session.run(None, {name: x})
        times.append(time.perf_counter() - started)
    median = sorted(times)[len(times) // 2]
    fields.append(f"b{batch}_ms={1e3 * median:.3f} b{batch}_rows_per_s={batch / median:.1f}")
print(" ".join(fields))
