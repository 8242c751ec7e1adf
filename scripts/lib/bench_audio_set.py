"""The synthetic set of scripts/bench-audio's accuracy part, and scikit-learn's side.

  bench_audio_set.py make DIR PER_CLASS SNR_DB SEED   DIR/{train,test}/{call,noise}/*.wav
  bench_audio_set.py sklearn DIR                      held-out accuracy of LogisticRegression and an MLP

Calls are pulsed calls (a harmonic stack switched on and off) or whistles (a frequency sweep);
the background is shipping noise (a hum and its harmonics over brown noise), rain (bursts of
white noise) and clicks (impulses), mixed at random. Each call clip is background plus a call
scaled to SNR_DB against that background; noise clips are background alone. 30 % of each class
is held out. scikit-learn sees librosa log-mel summary features: each band's mean and deviation
over time (64 bands, 128 numbers), standardised.
"""
import glob
import json
import os
import sys
import time

import numpy as np

SR = 32000
SECONDS = 3


def background(rng, t):
    kind = rng.integers(0, 3)
    brown = np.cumsum(rng.standard_normal(t.size))
    brown = brown - np.convolve(brown, np.ones(400) / 400, mode="same")
    out = 0.05 * brown / (np.std(brown) + 1e-9)
    f0 = rng.uniform(30, 90)
    for h in range(1, 5):
        out += 0.03 / h * np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 6.3))
    if kind == 1:  # rain: bursts of white noise
        bursts = (rng.random(t.size // 800 + 1) < 0.3).repeat(800)[: t.size]
        out += 0.05 * rng.standard_normal(t.size) * bursts
    elif kind == 2:  # clicks
        for position in rng.integers(0, t.size - 64, rng.integers(5, 40)):
            out[position:position + 64] += rng.uniform(0.2, 0.6) * np.exp(-np.arange(64) / 8) * rng.choice([-1, 1])
    return out


def call(rng, t):
    if rng.random() < 0.5:  # pulsed call: harmonics of f0, on and off
        f0 = rng.uniform(500, 1500)
        tone = sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, 6))
        gate = (np.sin(2 * np.pi * rng.uniform(2, 8) * t) > 0).astype(float)
        start = rng.uniform(0, 1.5)
        return tone * gate * ((t > start) & (t < start + rng.uniform(0.8, 1.5)))
    f = rng.uniform(4000, 9000)  # whistle: a sweep of ±2 kHz
    sweep = np.sin(2 * np.pi * (f * t + rng.uniform(-2000, 2000) / 2 * t ** 2))
    start = rng.uniform(0, 1.8)
    return sweep * ((t > start) & (t < start + rng.uniform(0.5, 1.2)))


def make(directory, per_class, snr_db, seed):
    import soundfile as sf
    rng = np.random.default_rng(int(seed))
    t = np.arange(SR * SECONDS) / SR
    for label in ("call", "noise"):
        for index in range(int(per_class)):
            split = "test" if index < int(per_class) * 0.3 else "train"
            os.makedirs(f"{directory}/{split}/{label}", exist_ok=True)
            y = background(rng, t)
            if label == "call":
                c = call(rng, t)
                active = c[c != 0]
                scale = np.sqrt(np.mean(y ** 2) / (np.mean(active ** 2) + 1e-12)) * 10 ** (float(snr_db) / 20)
                y = y + scale * c
            y = y / (np.max(np.abs(y)) + 1e-9) * rng.uniform(0.1, 0.9)  # recording gain
            sf.write(f"{directory}/{split}/{label}/{label}{index:04d}.wav", y.astype(np.float32), SR, subtype="PCM_16")


def features(paths):
    import librosa
    rows = []
    for path in paths:
        y, _ = librosa.load(path, sr=22050, duration=SECONDS)
        y = librosa.util.fix_length(y, size=22050 * SECONDS)
        m = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=22050, n_mels=64))
        rows.append(np.concatenate([m.mean(axis=1), m.std(axis=1)]))
    return np.array(rows)


def sklearn(directory):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    sets = {}
    for split in ("train", "test"):
        paths = sorted(glob.glob(f"{directory}/{split}/*/*.wav"))
        sets[split] = (paths, np.array([os.path.basename(os.path.dirname(p)) == "call" for p in paths]))
    start = time.perf_counter()
    x_train = features(sets["train"][0])
    x_test = features(sets["test"][0])
    feature_seconds = time.perf_counter() - start
    out = {"feature_seconds": round(feature_seconds, 2)}
    for name, model in (("logistic", LogisticRegression(max_iter=2000)),
                        ("mlp", MLPClassifier(hidden_layer_sizes=(128,), max_iter=1000, random_state=0))):
        pipeline = make_pipeline(StandardScaler(), model)
        start = time.perf_counter()
        pipeline.fit(x_train, sets["train"][1])
        out[f"{name}_train_seconds"] = round(time.perf_counter() - start, 3)
        start = time.perf_counter()
        accuracy = float((pipeline.predict(x_test) == sets["test"][1]).mean())
        out[f"{name}_predict_seconds"] = round(time.perf_counter() - start, 4)
        out[f"{name}_accuracy"] = round(accuracy, 4)
    print(json.dumps(out))


if __name__ == "__main__":
    {"make": make, "sklearn": sklearn}[sys.argv[1]](*sys.argv[2:])
