"""tritonclient.http, unchanged, against Shoal's gateway: health, metadata, config, and inference
with JSON and binary tensors on a classification model and on an image input.

Usage: triton_session.py HOST:PORT EXPECTED_JSON. EXPECTED_JSON gives the classifier's input and
its probabilities, and the image model's preprocessing.
"""
import io
import json
import sys

import numpy as np
import tritonclient.http as httpclient
from PIL import Image
from tritonclient.utils import InferenceServerException

url, expected_path = sys.argv[1], sys.argv[2]
expected = json.load(open(expected_path))
client = httpclient.InferenceServerClient(url=url)
assert client.is_server_live() and client.is_server_ready()
assert client.is_model_ready("classifier")
assert not client.is_model_ready("nosuch")

metadata = client.get_model_metadata("classifier")
assert metadata["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}], metadata
assert metadata["versions"] == ["1"], metadata
config = client.get_model_config("classifier")
assert config["max_batch_size"] >= 1 and config["input"][0]["dims"] == [4], config

x = np.array(expected["x"], dtype=np.float32)
want = np.array(expected["probs"], dtype=np.float32)
for binary in (False, True):
    tensor = httpclient.InferInput("x", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    output = httpclient.InferRequestedOutput("probs", binary_data=binary)
    result = client.infer("classifier", [tensor], outputs=[output], request_id=f"r{int(binary)}")
    assert np.allclose(result.as_numpy("probs"), want, atol=1e-6), (binary, result.as_numpy("probs"), want)
    response = result.get_response()
    assert response["model_version"] == "1" and response["id"] == f"r{int(binary)}", response
# With no outputs named, tritonclient asks for every output in binary.
tensor = httpclient.InferInput("x", list(x.shape), "FP32")
tensor.set_data_from_numpy(x)
assert np.allclose(client.infer("classifier", [tensor]).as_numpy("probs"), want, atol=1e-6)
# The classification extension: the best class of each row.
best = client.infer("classifier", [tensor], outputs=[httpclient.InferRequestedOutput("probs", class_count=1)])
labels = [int(entry.decode().split(":")[1]) for entry in best.as_numpy("probs").reshape(-1)]
assert labels == [int(i) for i in want.argmax(axis=1)], labels

# Errors are {"error": …} with 4xx statuses, naming what was wrong.
wrong = httpclient.InferInput("x", [2, 5], "FP32")
wrong.set_data_from_numpy(np.zeros((2, 5), np.float32))
try:
    client.infer("classifier", [wrong])
    raise AssertionError("a wrong shape was accepted")
except InferenceServerException as error:
    assert error.status() == "400" and "x" in error.message(), (error.status(), error.message())
try:
    client.infer("nosuch", [tensor])
    raise AssertionError("an unknown model answered")
except InferenceServerException as error:
    assert error.status() == "404", error.status()

# An image input: PNG files as BYTES, decoded and normalised by the version's preprocessing.
yy, xx = np.mgrid[0:16, 0:16]
pixels = np.stack([(xx * 16) % 256, (yy * 12) % 256, ((xx + yy) * 7) % 256], -1).astype(np.uint8)
buffer = io.BytesIO()
Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
mean, std = np.array(expected["mean"], np.float32), np.array(expected["std"], np.float32)
want_image = ((pixels.astype(np.float32) / 255 - mean) / std).mean(axis=(0, 1))
files = np.array([buffer.getvalue(), buffer.getvalue()], dtype=np.object_)
image = httpclient.InferInput("x", [2], "BYTES")
image.set_data_from_numpy(files, binary_data=True)
result = client.infer("pooling", [image])
got = result.as_numpy("y")
assert got.shape == (2, 3) and np.allclose(got, [want_image, want_image], atol=1e-5), (got, want_image)
print("tritonclient session passed")
