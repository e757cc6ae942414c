"""Every config in examples/ is valid as shipped: `remora validate` decodes it and loads the
TLS files it names (certificates made with `remora cert` stand in at /etc/remora/certs). And
validate refuses what `remora proxy` would not start with: a key that does not match its
certificate."""

import glob
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import REMORA_BIN, remora_cert  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CERTS = "/etc/remora/certs"


class ExamplesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="remora-examples-")
        d = cls.tmp.name
        remora_cert("ca", "--out", f"{d}/ca")
        remora_cert("issue", "--ca", f"{d}/ca", "--spiffe-id",
                    "spiffe://mesh.example/ns/shop/sa/order", "--out", f"{d}/certs")
        remora_cert("issue", "--ca", f"{d}/ca", "--spiffe-id",
                    "spiffe://mesh.example/ns/shop/sa/other", "--out", f"{d}/other")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def validate(self, text):
        path = os.path.join(self.tmp.name, "config.yaml")
        with open(path, "w") as f:
            f.write(text.replace(CERTS, f"{self.tmp.name}/certs"))
        return subprocess.run([REMORA_BIN, "validate", "-c", path], capture_output=True,
                              text=True, timeout=30)

    def test_every_example_is_valid(self):
        examples = sorted(glob.glob(os.path.join(ROOT, "examples", "*.yaml")))
        self.assertGreaterEqual(len(examples), 2)
        for example in examples:
            with open(example) as f:
                r = self.validate(f.read())
            self.assertEqual(r.returncode, 0, f"{example}: {r.stderr}")
            self.assertIn(": ok (", r.stdout)

    def test_a_key_that_does_not_match_its_certificate_is_not_valid(self):
        with open(os.path.join(ROOT, "examples", "sidecar-mtls.yaml")) as f:
            text = f.read().replace(f"{CERTS}/key.pem", f"{self.tmp.name}/other/key.pem", 1)
        r = self.validate(text)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("listener inbound (line 21): tls: the key", r.stderr)
        self.assertIn("does not match the certificate", r.stderr)
        # Where the certificates are not mounted, the config alone can still be checked.
        path = os.path.join(self.tmp.name, "config.yaml")
        r = subprocess.run([REMORA_BIN, "validate", "-c", path, "--skip-tls-files"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
