"""The pieces of scripts/bench-aoi:

  bench_aoi.py graph DIR                 a MobileNet-v2-shaped classifier of 4 classes (DIR/aoi.onnx)
  bench_aoi.py serve PORT_FILE DELAY_MS  a tile server of generated JPEG tiles, each answer held back DELAY_MS
  bench_aoi.py script URL BBOX ZOOM MODEL   the same job as a user would script it; prints tiles_per_s=…
  bench_aoi.py floor-input URL OUT.npy   a batch of 8 decoded, resized tiles (the compute floor's input)

The script is what the ML Enabler and Label Studio crowd write by hand: mercantile for the tiles,
requests (a session per thread) in a thread pool of 8 for the fetching, Pillow to decode and
resize, and onnxruntime (2 intra-op threads) on batches of 8, fetching ahead while it predicts.
"""
import io
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np


def graph(directory):
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from bench_model_graphs import mobilenetv2

    g, output = mobilenetv2(classes=4)
    g.save(output, f"{directory}/aoi.onnx", classes=4)


def tiles_pool(count=64):
    """Textured 256 × 256 JPEGs: smooth noise with a few bright shapes, like roofs on fields."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(17)
    pool = []
    for _ in range(count):
        base = rng.random((16, 16, 3)) * 120 + 40
        image = Image.fromarray(base.astype(np.uint8)).resize((256, 256), Image.BILINEAR)
        noisy = np.asarray(image).astype(np.int16) + rng.integers(-12, 12, (256, 256, 3))
        image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(rng.integers(0, 5)):
            x, y = rng.integers(0, 220, 2)
            draw.rectangle([int(x), int(y), int(x + rng.integers(10, 36)), int(y + rng.integers(10, 36))], fill=(235, 230, 220))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=85)
        pool.append(out.getvalue())
    return pool


def serve(port_file, delay_ms):
    pool = tiles_pool()
    delay = float(delay_ms) / 1000

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            parts = self.path.split("?")[0].strip("/").split("/")
            try:
                z, x, y = int(parts[-3]), int(parts[-2]), int(parts[-1].split(".")[0])
            except (ValueError, IndexError):
                self.send_error(404)
                return
            time.sleep(delay)
            body = pool[(x * 31 + y * 17 + z) % len(pool)]
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(port_file, "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


def preprocess(data):
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB").resize((224, 224), Image.BILINEAR)
    return np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255


def script(url, bbox, zoom, model):
    import mercantile
    import onnxruntime as ort
    import requests

    west, south, east, north = (float(v) for v in bbox.split(","))
    tiles = list(mercantile.tiles(west, south, east, north, int(zoom)))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    local = threading.local()

    def fetch(tile):
        if not hasattr(local, "session"):
            local.session = requests.Session()
        response = local.session.get(url.format(z=tile.z, x=tile.x, y=tile.y), timeout=30)
        response.raise_for_status()
        return tile, preprocess(response.content)

    start = time.perf_counter()
    results = {}
    batch, done = [], 0
    with ThreadPoolExecutor(8) as pool:
        for tile, array in pool.map(fetch, tiles):
            batch.append((tile, array))
            if len(batch) == 8:
                scores = session.run(None, {"input": np.stack([a for _, a in batch])})[0]
                for (t, _), row in zip(batch, scores):
                    results[(t.x, t.y)] = row
                done += len(batch)
                batch = []
        if batch:
            scores = session.run(None, {"input": np.stack([a for _, a in batch])})[0]
            for (t, _), row in zip(batch, scores):
                results[(t.x, t.y)] = row
            done += len(batch)
    seconds = time.perf_counter() - start
    print(f"tiles={done} seconds={seconds:.2f} tiles_per_s={done / seconds:.1f}")


def floor_input(url, out):
    import urllib.request

    arrays = [preprocess(urllib.request.urlopen(url.format(z=17, x=70000 + i, y=42000)).read()) for i in range(8)]
    np.save(out, np.stack(arrays))


if __name__ == "__main__":
    command, arguments = sys.argv[1], sys.argv[2:]
    {"graph": graph, "serve": serve, "script": script, "floor-input": floor_input}[command](*arguments)
