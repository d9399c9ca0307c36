"""Checks of the Helm chart with the real Helm engine (helm-python-sdk) and the Kubernetes schemas
(kubernetes-validate). Run by `scripts/test` (`python deploy/tests/check_chart.py`); no cluster is
needed or reached.
"""

from __future__ import annotations

import pathlib
import re
import sys
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy"))

import helm_python as helm  # noqa: E402
import kubernetes_validate  # noqa: E402
import yaml  # noqa: E402

import render  # noqa: E402

KUBE_VERSION = "1.30"
SERVICES = ["gateway", "mapi", "peer-channels", "block-parser", "zmq-listener", "notifier", "indexer"]
KEYS = {"gateway": "gateway", "mapi": "mapi", "peer-channels": "peerChannels", "block-parser": "blockParser",
        "zmq-listener": "zmqListener", "notifier": "notifier", "indexer": "indexer"}


def by_kind(objs: list[dict], kind: str) -> list[dict]:
    return [o for o in objs if o["kind"] == kind]


def service_of(obj: dict) -> str | None:
    return obj["metadata"].get("labels", {}).get("app.kubernetes.io/name")


def only(service: str) -> dict:
    return {"services": {KEYS[s]: {"enabled": s == service} for s in SERVICES}}


class Chart(unittest.TestCase):
    def test_lint_has_no_error(self):
        result = helm.lint(str(render.CHART), strict=True)
        errors = [m for m in result["messages"] if m["severity"] >= 2] + list(result["errors"])
        self.assertEqual(errors, [], result)

    def test_every_object_of_the_default_render_validates(self):
        objs = render.objects(render.render())
        self.assertGreater(len(objs), 30)
        for obj in objs:
            with self.subTest(kind=obj["kind"], name=obj["metadata"]["name"]):
                kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)

    def test_each_service_has_its_deployment_service_pdb_policy_and_migration(self):
        objs = render.objects(render.render())
        for service in SERVICES:
            with self.subTest(service=service):
                for kind in ["Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"]:
                    self.assertEqual(len([o for o in by_kind(objs, kind) if service_of(o) == service]), 1, kind)
                jobs = [o for o in by_kind(objs, "Job") if service_of(o) == service]
                self.assertEqual(len(jobs), 0 if service == "zmq-listener" else 1)
                for job in jobs:
                    hooks = job["metadata"]["annotations"]["helm.sh/hook"]
                    self.assertEqual(hooks, "pre-install,pre-upgrade")
                    self.assertEqual(job["spec"]["template"]["spec"]["containers"][0]["command"], [service, "migrate"])
        hpas = {service_of(o) for o in by_kind(objs, "HorizontalPodAutoscaler")}
        self.assertEqual(hpas, {"gateway", "mapi", "peer-channels", "notifier", "indexer"})
        self.assertEqual(len(by_kind(objs, "ConfigMap")), 1, "one shared ConfigMap")

    def test_pods_run_their_service_as_non_root_and_roll_on_config_or_secret_change(self):
        objs = render.objects(render.render())
        for dep in by_kind(objs, "Deployment"):
            service = service_of(dep)
            pod = dep["spec"]["template"]
            container = pod["spec"]["containers"][0]
            with self.subTest(service=service):
                self.assertEqual(container["command"], [service])
                self.assertTrue(pod["spec"]["securityContext"]["runAsNonRoot"])
                self.assertIn("checksum/config", pod["metadata"]["annotations"])
                self.assertIn("checksum/secret", pod["metadata"]["annotations"])
        before = {service_of(d): d["spec"]["template"]["metadata"]["annotations"]
                  for d in by_kind(objs, "Deployment")}
        after = {service_of(d): d["spec"]["template"]["metadata"]["annotations"]
                 for d in by_kind(render.objects(render.render({"config": {"RUST_LOG": "debug"},
                                                                "secrets": {"internalToken": "x" * 20}})),
                                  "Deployment")}
        for service in SERVICES:
            self.assertNotEqual(before[service]["checksum/config"], after[service]["checksum/config"])
            self.assertNotEqual(before[service]["checksum/secret"], after[service]["checksum/secret"])

    def test_secrets_reach_only_the_services_that_need_them(self):
        objs = render.objects(render.render())
        for dep in by_kind(objs, "Deployment"):
            service = service_of(dep)
            names = {e["name"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
            with self.subTest(service=service):
                self.assertIn("INTERNAL_TOKEN", names)
                self.assertEqual("WIF_PRIVATEKEY" in names, service == "mapi")
                self.assertEqual("RESTADMIN_APIKEY" in names, service == "gateway")
                self.assertEqual("DATABASE_URL" in names, service != "zmq-listener")

    def test_probes_are_paths_and_the_port_the_service_serves(self):
        # Every service is built on service-kit's base_app, which serves /health and /ready on
        # LISTEN_ADDR; the chart sets LISTEN_ADDR to the container port.
        app = (ROOT / "crates/service-kit/src/app.rs").read_text()
        served = set(re.findall(r'\.route\("(/health|/ready)"', app))
        self.assertEqual(served, {"/health", "/ready"})
        objs = render.objects(render.render())
        config = by_kind(objs, "ConfigMap")[0]["data"]
        port = int(config["LISTEN_ADDR"].rsplit(":", 1)[1])
        for dep in by_kind(objs, "Deployment"):
            service = service_of(dep)
            lib = (ROOT / "services" / service / "src/lib.rs").read_text()
            container = dep["spec"]["template"]["spec"]["containers"][0]
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            with self.subTest(service=service):
                self.assertIn("base_app(", lib, "the service is built on base_app")
                self.assertEqual(ports["http"], port)
                self.assertEqual(container["livenessProbe"]["httpGet"], {"path": "/health", "port": "http"})
                self.assertEqual(container["readinessProbe"]["httpGet"], {"path": "/ready", "port": "http"})

    def test_every_service_but_one_disabled(self):
        for service in SERVICES:
            with self.subTest(service=service):
                objs = render.objects(render.render(only(service)))
                for obj in objs:
                    kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
                names = {service_of(o) for o in objs if service_of(o)}
                self.assertEqual(names, {service})
                config = by_kind(objs, "ConfigMap")[0]["data"]
                urls = {k for k in config if k.endswith("_URL") and k != "PUBLIC_URL"}
                # The indexer service's variable: INDEXER_URL is the external indexer's.
                var = "INDEXER_SERVICE_URL" if service == "indexer" else service.upper().replace("-", "_") + "_URL"
                expected = set() if service == "gateway" else {var}
                self.assertEqual(urls, expected)

    def test_an_existing_secret_is_used_and_none_is_made(self):
        objs = render.objects(render.render({"secrets": {"existingSecret": "operator-secrets"}}))
        self.assertEqual(by_kind(objs, "Secret"), [])
        for obj in objs:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        for dep in by_kind(objs, "Deployment"):
            for env in dep["spec"]["template"]["spec"]["containers"][0]["env"]:
                if "valueFrom" in env:
                    self.assertEqual(env["valueFrom"]["secretKeyRef"]["name"], "operator-secrets")
        for job in by_kind(objs, "Job"):
            env = job["spec"]["template"]["spec"]["containers"][0]["env"]
            refs = [e["valueFrom"]["secretKeyRef"]["name"] for e in env if "valueFrom" in e]
            self.assertEqual(refs, ["operator-secrets"])

    def test_only_the_gateway_is_reachable_from_outside(self):
        objs = render.objects(render.render({"ingress": {"enabled": True}}))
        ingresses = by_kind(objs, "Ingress")
        self.assertEqual(len(ingresses), 1)
        backend = ingresses[0]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
        self.assertTrue(backend["name"].endswith("-gateway"))
        for policy in by_kind(objs, "NetworkPolicy"):
            service = service_of(policy)
            rules = policy["spec"]["ingress"]
            with self.subTest(service=service):
                if service == "gateway":
                    self.assertNotIn("from", rules[0], "the gateway takes anyone")
                else:
                    peers = rules[0]["from"]
                    self.assertEqual(peers, [{"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "bsv-mapi"}}}])

    def test_a_bad_values_file_fails_the_schema(self):
        chart = helm.Chart.load(str(render.CHART))
        chart.validate_schema(None)
        for bad in [
            {"services": {"mapi": {"replicaCount": "two"}}},
            {"services": {"mapi": {"replicas": 3}}},
            {"services": {"gateway": {"livenessProbe": {"path": "/healthz"}}}},
            {"servics": {}},
            {"config": {"lower_case": "x"}},
        ]:
            with self.subTest(values=bad):
                with self.assertRaises(helm.HelmError):
                    chart.validate_schema(bad)
                with self.assertRaises(helm.HelmError):
                    render.render(bad)

    def test_k8s_manifests_are_the_current_render(self):
        header = "# Rendered from deploy/chart with its default values by scripts/render-k8s; do not edit.\n"
        current = header + render.manifest(render.render())
        stored = (ROOT / "k8s/bsv-mapi.yaml").read_text()
        self.assertTrue(stored == current, "k8s/bsv-mapi.yaml is stale: run scripts/render-k8s")
        self.assertEqual(len(list(yaml.safe_load_all(stored))), len(render.objects(render.render())))


if __name__ == "__main__":
    unittest.main(verbosity=2)
