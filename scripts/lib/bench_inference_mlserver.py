"""A bounded closed-loop load on one model of an Open Inference Protocol v2 server (MLServer here)
with tritonclient's asyncio clients: CONCURRENCY coroutines on one client, each sending one request
at a time with a batch of one row, for at most 10 s and 100,000 requests, to loopback only.
Usage: bench_inference_mlserver.py --model NAME --input NAME --shape 3,224,224 [--protocol grpc|http]
       [--concurrency N] [--seconds S] [--url HOST:PORT]
Prints one line: requests=… errors=… rps=… p50_ms=… p99_ms=…"""
import argparse
import asyncio
import time

import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--model", required=True)
parser.add_argument("--input", required=True)
parser.add_argument("--shape", required=True)
parser.add_argument("--protocol", default="grpc", choices=["grpc", "http"])
parser.add_argument("--concurrency", type=int, default=1)
parser.add_argument("--seconds", type=float, default=5)
parser.add_argument("--url", default=None)
options = parser.parse_args()
seconds = min(options.seconds, 10.0)
url = options.url or ("127.0.0.1:18081" if options.protocol == "grpc" else "127.0.0.1:18080")
assert url.rsplit(":", 1)[0] in ("127.0.0.1", "localhost"), "loopback only"

if options.protocol == "grpc":
    import tritonclient.grpc as sync_client
    import tritonclient.grpc.aio as client_module
else:
    import tritonclient.http as sync_client
    import tritonclient.http.aio as client_module

shape = [1] + [int(d) for d in options.shape.split(",")]
data = np.random.default_rng(3).random(shape, dtype=np.float32)


def request_inputs():
    tensor = sync_client.InferInput(options.input, shape, "FP32")
    # MLServer's REST has no binary tensor extension: JSON there, raw contents over gRPC.
    tensor.set_data_from_numpy(data, **({"binary_data": False} if options.protocol == "http" else {}))
    return [tensor]


async def main():
    client = client_module.InferenceServerClient(url=url)
    extra = {"headers": {"Content-Type": "application/json"}} if options.protocol == "http" else {}
    inputs = request_inputs()
    for _ in range(10):
        await client.infer(options.model, inputs, **extra)
    latencies, errors = [], 0
    end = time.perf_counter() + seconds

    async def loop():
        nonlocal errors
        while time.perf_counter() < end and len(latencies) < 100_000:
            started = time.perf_counter()
            try:
                await client.infer(options.model, inputs, **extra)
                latencies.append(time.perf_counter() - started)
            except Exception:
                errors += 1
                if errors > 100:
                    return

    began = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(options.concurrency)))
    wall = time.perf_counter() - began
    await client.close()
    latencies.sort()
    count = len(latencies)
    percentile = lambda q: 1e3 * latencies[min(count - 1, int(q * count))] if count else float("nan")
    print(f"requests={count} errors={errors} rps={count / wall:.1f} p50_ms={percentile(0.5):.3f} "
          f"p99_ms={percentile(0.99):.3f}")


asyncio.run(main())
