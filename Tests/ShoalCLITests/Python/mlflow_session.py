"""A user's MLflow session, unchanged, against Shoal's gateway: the fluent API and MlflowClient.

Usage: mlflow_session.py MODEL_DIR OUT_JSON (MLFLOW_TRACKING_URI names the gateway). MODEL_DIR holds
MLmodel and model.onnx. Every check is an assert; what the Swift test reads back over RPC goes to
OUT_JSON.
"""
import filecmp
import json
import math
import os
import sys
import tempfile

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

model_dir, out = sys.argv[1], sys.argv[2]
work = tempfile.mkdtemp()

# An unknown experiment is created by set_experiment (get-by-name answers RESOURCE_DOES_NOT_EXIST).
assert mlflow.get_experiment_by_name("roads") is None
experiment = mlflow.set_experiment("roads")
assert experiment.name == "roads" and experiment.experiment_id

with mlflow.start_run(run_name="baseline") as run:
    run_id = run.info.run_id
    mlflow.log_param("lr", 0.1)
    mlflow.log_params({"layers": 3, "optimizer": "adam"})
    for step in range(5):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    mlflow.log_metrics({"acc": 0.75, "diverged": float("nan"), "best": float("inf")}, step=4)
    mlflow.set_tags({"team": "maps", "draft": "yes"})
    mlflow.delete_tag("draft")
    notes = os.path.join(work, "notes.txt")
    with open(notes, "w") as f:
        f.write("first run\n")
    mlflow.log_artifact(notes)
    mlflow.log_artifact(notes, "reports/daily")
    mlflow.log_artifacts(model_dir, "model")
    # A param logged again with another value is the caller's mistake: 400, never a retried 5xx.
    try:
        mlflow.log_param("lr", 0.5)
        raise AssertionError("a changed param was accepted")
    except MlflowException as error:
        assert error.error_code == "INVALID_PARAMETER_VALUE", error.error_code

client = MlflowClient()
got = client.get_run(run_id)
assert got.info.status == "FINISHED" and got.info.run_name == "baseline", got.info
assert got.data.params == {"lr": "0.1", "layers": "3", "optimizer": "adam"}, got.data.params
assert got.data.metrics["loss"] == 0.2 and got.data.metrics["acc"] == 0.75, got.data.metrics
assert math.isnan(got.data.metrics["diverged"]) and got.data.metrics["best"] == math.inf
assert got.data.tags["team"] == "maps" and "draft" not in got.data.tags, got.data.tags
history = client.get_metric_history(run_id, "loss")
assert [(m.step, m.value) for m in history] == [(s, 1.0 / (s + 1)) for s in range(5)], history

# A batch through MlflowClient, and a second run to search among.
second = client.create_run(experiment.experiment_id, run_name="wide")
client.log_batch(
    second.info.run_id,
    metrics=[Metric("loss", 0.5 - 0.01 * i, 1796600000000 + i, i) for i in range(100)],
    params=[Param("lr", "0.01")],
    tags=[RunTag("team", "audio")],
)
client.set_terminated(second.info.run_id, "KILLED")
assert client.get_run(second.info.run_id).info.status == "KILLED"

# Shoal's filters take OR (MLflow's own server refuses it).
found = client.search_runs([experiment.experiment_id], "metrics.loss < 0.3 OR params.lr = '0.01'", order_by=["metrics.loss ASC"])
assert [r.info.run_name for r in found] == ["wide", "baseline"], [r.info.run_name for r in found]
only = client.search_runs([experiment.experiment_id], "tags.team = 'audio'")
assert [r.info.run_id for r in only] == [second.info.run_id]
client.delete_run(second.info.run_id)
assert [r.info.run_id for r in client.search_runs([experiment.experiment_id])] == [run_id]
client.restore_run(second.info.run_id)
assert len(client.search_runs([experiment.experiment_id])) == 2

# Artifacts: listing folders, downloading back what was uploaded.
assert sorted(a.path for a in client.list_artifacts(run_id)) == ["model", "notes.txt", "reports"]
assert [a.path for a in client.list_artifacts(run_id, "reports/daily")] == ["reports/daily/notes.txt"]
back = client.download_artifacts(run_id, "reports/daily/notes.txt", work)
assert open(back).read() == "first run\n"

# Unknown things are RESOURCE_DOES_NOT_EXIST.
try:
    client.get_run("0" * 32)
    raise AssertionError("an unknown run was found")
except MlflowException as error:
    assert error.error_code == "RESOURCE_DOES_NOT_EXIST", error.error_code

# The registry: a model registered from the run's folder, an alias, and loading back by alias.
version = mlflow.register_model(f"runs:/{run_id}/model", "road-classifier")
assert version.version == "1" and version.status == "READY", version
client.set_registered_model_alias("road-classifier", "champion", version.version)
assert client.get_model_version_by_alias("road-classifier", "champion").version == "1"
registered = client.get_registered_model("road-classifier")
assert registered.aliases == {"champion": "1"}, registered.aliases
loaded = mlflow.artifacts.download_artifacts("models:/road-classifier@champion", dst_path=os.path.join(work, "loaded"))
assert filecmp.cmp(os.path.join(loaded, "model.onnx"), os.path.join(model_dir, "model.onnx"), shallow=False)
assert os.path.exists(os.path.join(loaded, "MLmodel"))
try:
    client.get_model_version_by_alias("road-classifier", "nosuch")
    raise AssertionError("an unknown alias was found")
except MlflowException as error:
    assert error.error_code == "INVALID_PARAMETER_VALUE", error.error_code

json.dump({"run_id": run_id, "second_run_id": second.info.run_id, "experiment_id": experiment.experiment_id}, open(out, "w"))
print("mlflow session passed")
