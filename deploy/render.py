"""Renders the chart with the real Helm engine (helm-python-sdk) into Kubernetes objects.

Used by `scripts/render-k8s` (the manifests under `k8s/`) and by `deploy/tests/check_chart.py`.
"""

from __future__ import annotations

import pathlib

import helm_python as helm
import yaml

CHART = pathlib.Path(__file__).resolve().parent / "chart"
RELEASE = "bsv-mapi"
NAMESPACE = "bsv-mapi"


def render(values: dict | None = None, name: str = RELEASE, namespace: str = NAMESPACE) -> dict[str, str]:
    """Template path -> rendered text (NOTES.txt left out)."""
    chart = helm.Chart.load(str(CHART))
    out = chart.render(values, name=name, namespace=namespace, is_install=True)
    return {path: text for path, text in sorted(out.items()) if not path.endswith("NOTES.txt")}


def objects(rendered: dict[str, str]) -> list[dict]:
    """Every Kubernetes object of a render, in template order."""
    docs = []
    for text in rendered.values():
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def manifest(rendered: dict[str, str]) -> str:
    """One multi-document YAML file, each document headed by its template."""
    parts = []
    for path, text in rendered.items():
        for doc in text.split("\n---"):
            body = doc.strip()
            if body and any(not line.lstrip().startswith("#") for line in body.splitlines()):
                parts.append(f"# Source: {path}\n{body}\n")
    return "---\n".join(parts)
