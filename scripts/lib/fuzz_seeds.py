"""Writes the fuzz targets' seed corpora (Fuzz/corpus/TARGET/): small valid inputs of each format,
made with the same peers the tests use (Pillow, soundfile, onnx), so that libFuzzer starts from
inputs that get past the first checks.

usage: python fuzz_seeds.py OUT_DIR   (scripts/fuzz --seed runs it with the test venv)
"""

import io
import json
import os
import struct
import sys

import numpy as np
import onnx
import soundfile
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

out = sys.argv[1]


def write(target, name, data):
    os.makedirs(f"{out}/{target}", exist_ok=True)
    with open(f"{out}/{target}/{name}", "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def varint(n):
    b = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        b.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(b)


def field(number, wire, payload):
    key = varint(number << 3 | wire)
    if wire == 2:
        return key + varint(len(payload)) + payload
    return key + payload


def string(number, text):
    return field(number, 2, text.encode())


# frames: a HELLO, a CALL with its header, a MESSAGE and a WINDOW (10-byte header: length, type,
# flags, stream, big-endian).
def frame(kind, flags, stream, payload):
    return struct.pack(">IBBI", len(payload), kind, flags, stream) + payload


call_header = string(1, "/shoal.tracking.v1.Tracking/LogBatch") + field(2, 0, varint(5_000_000))
batch = string(1, "run-1") + field(2, 2, string(1, "loss") + field(2, 1, struct.pack("<d", 0.25)) + field(3, 0, varint(1700000000000)))
write("frames", "call.bin", frame(0, 0, 0, b"") + frame(1, 0, 1, call_header) + frame(2, 0, 1, batch))
write("frames", "window.bin", frame(8, 0, 1, struct.pack(">I", 65536)) + frame(5, 0, 0, b"12345678"))

# messages: a LogBatchRequest, a PutPredictionsRequest and a RegisterRequest.
write("messages", "log-batch.bin", batch + field(2, 2, string(1, "acc") + field(2, 1, struct.pack("<d", float("nan")))))
tile = field(1, 0, varint(17)) + field(2, 0, varint(70000)) + field(3, 0, varint(42000))
write("messages", "put-predictions.bin", string(1, "3") + string(2, "req-1") + field(3, 2, tile))
write("messages", "register.bin", string(1, "tracking") + string(2, "unix:///tmp/tracking.sock") + string(3, "0.1.0"))

# json: proto3 JSON of the same requests.
write("json", "log-batch.json", json.dumps({"runId": "r", "metrics": [{"key": "loss", "value": "NaN", "timestampMs": "1", "step": "3"}]}))
write("json", "predict.json", json.dumps({"model": "roads@production", "inputs": [{"name": "x", "datatype": "FP32", "shape": ["1", "4"], "rawContents": "AACAPwAAAEAAAEBAAACAQA=="}], "topK": 2}))
write("json", "query-tiles.json", json.dumps({"setId": "1", "bbox": {"west": 13.3, "south": 52.5, "east": 13.5, "north": 52.6}, "status": "ONLY_VALID", "pageSize": 100}))

# filter: the search language, as the tests use it.
for index, text in enumerate([
    "metrics.loss < 0.5 AND params.lr = '0.1'",
    "tags.`team name` LIKE 'ro%' OR attributes.status = 'FINISHED'",
    "(metrics.acc >= 0.9 OR metrics.f1 > 0.8) AND run_name ILIKE '%ResNet%'",
    "attributes.run_id IN ('a1', 'b2') AND metrics.loss != 1e-3",
    "name = 'roads' AND tags.owner = \"ana\"",
]):
    write("filter", f"filter-{index}.txt", text)

# onnx: a small convolutional classifier.
w = numpy_helper.from_array(np.random.default_rng(1).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
g = numpy_helper.from_array(np.random.default_rng(2).standard_normal((4, 2)).astype(np.float32), "g")
graph = helper.make_graph(
    [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
     helper.make_node("GlobalAveragePool", ["r"], ["p"]), helper.make_node("Flatten", ["p"], ["f"]),
     helper.make_node("MatMul", ["f", "g"], ["m"]), helper.make_node("Softmax", ["m"], ["y"], axis=1)],
    "seed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])], [w, g])
write("onnx", "classifier.onnx", helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString())

# image: PNGs (RGB, grey, palette with transparency) and a JPEG.
pixels = (np.arange(16 * 12 * 3) % 251).astype(np.uint8).reshape(12, 16, 3)
for name, image, fmt in [
    ("rgb.png", Image.fromarray(pixels), "PNG"), ("gray.png", Image.fromarray(pixels[:, :, 0]), "PNG"),
    ("palette.png", Image.fromarray(pixels).convert("P"), "PNG"), ("rgb.jpg", Image.fromarray(pixels), "JPEG"),
]:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    write("image", name, buffer.getvalue())

# audio: a tenth of a second in WAV, FLAC and OGG.
tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(1600) / 16000)).astype(np.float32)
for name, fmt, subtype in [("tone.wav", "WAV", "PCM_16"), ("tone.flac", "FLAC", "PCM_16"), ("tone.ogg", "OGG", "VORBIS")]:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.stack([tone, tone[::-1]], axis=1), 16000, format=fmt, subtype=subtype)
    write("audio", name, buffer.getvalue())

# geojson: a polygon with a hole, a feature collection, a multipolygon.
square = [[13.3, 52.5], [13.5, 52.5], [13.5, 52.6], [13.3, 52.6], [13.3, 52.5]]
hole = [[13.35, 52.52], [13.36, 52.52], [13.36, 52.53], [13.35, 52.52]]
write("geojson", "polygon.json", json.dumps({"type": "Polygon", "coordinates": [square, hole]}))
write("geojson", "collection.json", json.dumps({"type": "FeatureCollection", "features": [
    {"type": "Feature", "properties": {"name": "a"}, "geometry": {"type": "Point", "coordinates": [13.4, 52.5]}},
    {"type": "Feature", "properties": None, "geometry": {"type": "LineString", "coordinates": square}}]}))
write("geojson", "multi.json", json.dumps({"type": "MultiPolygon", "coordinates": [[square], [[[0, 0], [1, 0], [1, 1], [0, 0]]]]}))

# pipeline: the documented example.
write("pipeline", "orca.json", json.dumps({
    "model": "orca", "source": {"audio_dataset": "calls"}, "test": {"audio_dataset": "calls-test"},
    "triggers": {"labels": 20, "every_seconds": 86400},
    "steps": [{"step": "load"}, {"step": "validate", "min_per_class": 4}, {"step": "tune", "hidden_sizes": [128, 256]},
              {"step": "train", "epochs": 100}, {"step": "evaluate"}, {"step": "decide", "margin": 0.01},
              {"step": "promote"}, {"step": "notify", "webhook": "https://hooks.example/x", "format": "slack"}]}))
