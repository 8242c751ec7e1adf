# The peers' own clients, which the gateway's tests and benchmark run against it unchanged: mlflow 3.17.2 (3.18 does not
# install here), tritonclient[http] and Pillow, in a venv of their own (mlflow pins packages of its own); and selenium,
# which drives Debian's chromium through chromium-driver for the review pages' tests; and kubernetes-validate, which
# checks mesh/kubernetes against Kubernetes' own schemas.
# `ensure_peers_python` sets SHOAL_PEERS_PYTHON to it unless it is set, creating .build-py/peers when needed.
ensure_peers_python() {
  [[ -n ${SHOAL_PEERS_PYTHON:-} ]] && return 0
  local peers=.build-py/peers
  if [[ ! -x $peers/bin/python ]] || ! "$peers/bin/python" -c "import mlflow, tritonclient.http, PIL, selenium, kubernetes_validate" 2>/dev/null; then
    echo "== creating $peers (mlflow, tritonclient, selenium, kubernetes-validate)" >&2
    rm -rf "$peers"
    python3 -m venv "$peers"
    "$peers/bin/pip" install --quiet --disable-pip-version-check "mlflow==3.17.2" "tritonclient[http]==2.73.0" \
      "pillow==11.3.0" "selenium==4.51.0" \
      "kubernetes-validate==1.37.0"
  fi
  export SHOAL_PEERS_PYTHON=$PWD/$peers/bin/python
}

# Label Studio 1.23 itself, which the gateway's ML backend test drives through its own REST API, in a venv of its own
# (it pins Django and much else). sentry-sdk 3 breaks its start-up, so it stays below 3.
# `ensure_label_studio` sets SHOAL_LABEL_STUDIO to its `label-studio` unless it is set, creating .build-py/labelstudio.
ensure_label_studio() {
  [[ -n ${SHOAL_LABEL_STUDIO:-} ]] && return 0
  local venv=.build-py/labelstudio
  if [[ ! -x $venv/bin/label-studio ]] || ! "$venv/bin/python" -c "import label_studio, requests" 2>/dev/null; then
    echo "== creating $venv (label-studio 1.23)" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "label-studio==1.23.0" "sentry-sdk<3"
  fi
  export SHOAL_LABEL_STUDIO=$PWD/$venv/bin/label-studio
}
