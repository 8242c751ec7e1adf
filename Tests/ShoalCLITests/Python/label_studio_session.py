"""A Label Studio user's session against Shoal's ML backend, through Label Studio's own REST API:
two projects (image classification with Choices, detection with RectangleLabels), images uploaded
to Label Studio, Shoal's gateway connected as each project's ML backend, predictions asked for,
annotations made (which Label Studio sends to the backend's webhook), and training started.

usage: label_studio_session.py LABEL_STUDIO_URL TOKEN GATEWAY_URL IMAGES_DIR OUT.json

The images are IMAGES_DIR/bright-*.png (a white square on dark ground) and dark-*.png (none);
expected.json there gives each bright image's square in percent. What Label Studio kept is
written to OUT.json for the Swift test to compare with the feedback service.
"""

import json
import os
import sys
import time

import requests

ls_url, token, gateway, images_dir, out_path = sys.argv[1:6]
session = requests.Session()
session.headers["Authorization"] = f"Token {token}"


def call(method, path, **kwargs):
    response = session.request(method, f"{ls_url}{path}", timeout=120, **kwargs)
    assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text[:2000]}"
    return response.json() if response.content else None


expected = json.load(open(os.path.join(images_dir, "expected.json")))
names = sorted(n for n in os.listdir(images_dir) if n.endswith(".png"))

CONFIGS = {
    "classification": """
<View>
  <Image name="image" value="$image"/>
  <Choices name="tile" toName="image" choice="single">
    <Choice value="empty"/>
    <Choice value="object"/>
  </Choices>
</View>""",
    "detection": """
<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="boxes" toName="image">
    <Label value="object" background="#ff8800"/>
  </RectangleLabels>
</View>""",
    "segmentation": """
<View>
  <Image name="image" value="$image"/>
  <PolygonLabels name="outline" toName="image">
    <Label value="Roof"/>
  </PolygonLabels>
</View>""",
}
MODELS = {"classification": "bright-tiles", "detection": "bright-boxes", "segmentation": "bright-segments"}
report = {}

for kind, config in CONFIGS.items():
    project = call("POST", "/api/projects", json={"title": f"shoal {kind}", "label_config": config})
    pid = project["id"]
    files = [(f"file{index}", (name, open(os.path.join(images_dir, name), "rb"), "image/png")) for index, name in enumerate(names)]
    imported = call("POST", f"/api/projects/{pid}/import", files=files)
    assert imported["task_count"] == len(names), imported
    tasks = call("GET", f"/api/tasks?project={pid}&page_size=100")["tasks"]
    by_name = {}
    for task in tasks:
        url = task["data"]["image"]
        assert url.startswith("/data/upload/"), url
        by_name[next(n for n in names if url.endswith(n))] = task["id"]

    # Connecting the backend makes Label Studio call /health and /setup (with its token).
    backend = call(
        "POST", "/api/ml",
        json={"project": pid, "url": f"{gateway}/label-studio/{MODELS[kind]}", "title": f"shoal {kind}"})
    assert backend.get("state") in ("CO", "CONNECTED", None) or "error" not in backend, backend
    call("POST", f"/api/dm/actions?id=retrieve_tasks_predictions&project={pid}",
         json={"project": pid, "selectedItems": {"all": True, "excluded": []}})

    predictions = {}
    for name, tid in by_name.items():
        task = call("GET", f"/api/tasks/{tid}")
        assert task["predictions"], f"{kind}: task {tid} ({name}) has no prediction"
        prediction = task["predictions"][0]
        assert prediction["model_version"].endswith(f"/{MODELS[kind]}/1"), prediction["model_version"]
        predictions[name] = prediction["result"]
        if kind == "classification":
            [result] = prediction["result"]
            chosen = result["value"]["choices"]
            assert chosen == (["object"] if name.startswith("bright") else ["empty"]), (name, chosen)
            assert result["from_name"] == "tile" and result["to_name"] == "image"
        else:
            if name.startswith("dark"):
                assert prediction["result"] == [], (name, prediction["result"])
                continue
            [result] = prediction["result"]
            value = result["value"]
            box = expected[name]
            if kind == "detection":
                assert value["rectanglelabels"] == ["object"]
                found = value
            else:
                # The model's class "roof" is the config's label "Roof"; the outline, in percent.
                assert value["polygonlabels"] == ["Roof"], value
                xs = [p[0] for p in value["points"]]
                ys = [p[1] for p in value["points"]]
                found = {"x": min(xs), "y": min(ys), "width": max(xs) - min(xs), "height": max(ys) - min(ys)}
            for key in ("x", "y", "width", "height"):
                assert abs(found[key] - box[key]) < 0.01, (kind, name, key, value, box)

    # A labeller's annotations: the first bright image as the model said, the first dark one as
    # holding an object after all (classification), or a box drawn beside the predicted one.
    annotated = {}
    bright = next(n for n in names if n.startswith("bright"))
    dark = next(n for n in names if n.startswith("dark"))
    if kind == "classification":
        for name, choice in ((bright, "object"), (dark, "object")):
            result = [{"from_name": "tile", "to_name": "image", "type": "choices", "value": {"choices": [choice]}}]
            call("POST", f"/api/tasks/{by_name[name]}/annotations", json={"result": result})
            annotated[name] = [choice]
    elif kind == "detection":
        box = expected[bright]
        kept = {"x": box["x"] + 0.5, "y": box["y"], "width": box["width"], "height": box["height"]}
        elsewhere = {"x": 70, "y": 70, "width": 10, "height": 10}
        for name, boxes in ((bright, [kept, elsewhere]),):
            result = [
                {"from_name": "boxes", "to_name": "image", "type": "rectanglelabels", "original_width": 256,
                 "original_height": 256, "value": dict(b, rotation=0, rectanglelabels=["object"])}
                for b in boxes]
            call("POST", f"/api/tasks/{by_name[name]}/annotations", json={"result": result})
            annotated[name] = boxes
    # Label Studio answers 200 whatever the backend said (the test reads the gateway's metrics).
    call("POST", f"/api/ml/{backend['id']}/train", json={})
    report[kind] = {"project": pid, "tasks": by_name, "annotated": annotated, "backend": backend["id"]}

json.dump(report, open(out_path, "w"), indent=1)
print("label studio session done")
