"""A "pod" for interception tests: a network namespace joined to this one by a veth pair, with
the sidecar's iptables rules added by the test, programs run inside it as a given uid, and
netns_peer.py as the app's client. Needs root, ip (iproute2), iptables and setpriv; why_not()
says what is missing."""

import json
import os
import shutil
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"  # Debian's Python packages import only under it
PROXY_UID, APP_UID = 1337, 1000


def run(*args, check=True):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=30, check=check)


def why_not(tools=("ip", "iptables", "setpriv", "curl")):
    """Why pods cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces and iptables)"
    for tool in tools:
        if shutil.which(tool) is None:
            return f"needs {tool}"
    probe = f"remora-probe-{os.getpid()}"
    if run("ip", "netns", "add", probe, check=False).returncode != 0:
        return "cannot create network namespaces here"
    run("ip", "netns", "del", probe, check=False)
    return None


def addresses(subnet):
    """(host_ip, pod_ip, host_ip6, pod_ip6) of the pod in 10.<subnet>.N.0/24 (and
    fd00:<subnet>:N::/64), N from the pid, so parallel test files do not collide."""
    n = os.getpid() % 200 + 20
    return f"10.{subnet}.{n}.2", f"10.{subnet}.{n}.1", f"fd00:{subnet}:{n}::2", \
        f"fd00:{subnet}:{n}::1"


class Pod:
    """The namespace, its veth pair and addresses (addresses(subnet)): this side is host_ip, the
    pod's pod_ip. close() undoes whatever was made, also after a failed set-up."""

    def __init__(self, tag, subnet):
        pid = os.getpid()
        self.ns = f"remora-{tag}-{pid}"
        self.veth_host, self.veth_pod = f"r{tag[:3]}h{pid % 100000}", f"r{tag[:3]}p{pid % 100000}"
        self.host_ip, self.pod_ip, self.host_ip6, self.pod_ip6 = addresses(subnet)
        self.cleanup = []
        try:
            run("ip", "netns", "add", self.ns)
            self.cleanup.append(lambda: run("ip", "netns", "del", self.ns, check=False))
            run("ip", "link", "add", self.veth_host, "type", "veth", "peer", "name", self.veth_pod)
            self.cleanup.append(lambda: run("ip", "link", "del", self.veth_host, check=False))
            run("ip", "link", "set", self.veth_pod, "netns", self.ns)
            run("ip", "addr", "add", f"{self.host_ip}/24", "dev", self.veth_host)
            run("ip", "link", "set", self.veth_host, "up")
            run(*self.cmd("ip", "addr", "add", f"{self.pod_ip}/24", "dev", self.veth_pod))
            run(*self.cmd("ip", "link", "set", self.veth_pod, "up"))
            run(*self.cmd("ip", "link", "set", "lo", "up"))
        except Exception:
            self.close()
            raise

    def cmd(self, *args, uid=None):
        """The command line running `args` in the pod (as `uid`, if given)."""
        prefix = ["ip", "netns", "exec", self.ns]
        if uid is not None:
            prefix += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
        return prefix + list(args)

    def nat(self, *rule, tool="iptables", check=True):
        """Appends `rule` to the pod's nat table."""
        return run(*self.cmd(tool, "-t", "nat", "-A", *rule), check=check)

    def peer_json(self, *args, stdin=None, uid=APP_UID):
        """netns_peer.py run in the pod as the app: its last line of JSON."""
        p = subprocess.run(self.cmd(PY, os.path.join(HERE, "netns_peer.py"), *args, uid=uid),
                           capture_output=True, text=True, timeout=30, input=stdin)
        if p.returncode != 0:
            raise AssertionError(f"netns_peer {args}: {p.stderr}")
        return json.loads(p.stdout.strip().splitlines()[-1])

    def serve(self, mode, host, port, uid=APP_UID):
        """Starts a netns_peer.py server in the pod and waits until it listens; killed by
        close()."""
        p = subprocess.Popen(self.cmd(PY, os.path.join(HERE, "netns_peer.py"), mode, host,
                                      str(port), uid=uid),
                             stdout=subprocess.PIPE, text=True)

        def stop():
            p.kill()
            p.wait()
            p.stdout.close()
        self.cleanup.append(stop)
        p.stdout.readline()  # listening
        return p

    def close(self):
        for fn in reversed(self.cleanup):
            try:
                fn()
            except Exception:  # keep cleaning up
                pass
        self.cleanup = []


class PodTestCase(unittest.TestCase):
    """A test class whose _set_up() registers the undoing of each step in cls.cleanup, run in
    reverse by tearDownClass, also after a set-up that failed half-way."""

    @classmethod
    def setUpClass(cls):
        cls.cleanup = []
        try:
            cls._set_up()
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def _set_up(cls):
        raise NotImplementedError

    @classmethod
    def tearDownClass(cls):
        for fn in reversed(cls.cleanup):
            try:
                fn()
            except Exception as e:  # keep cleaning up
                print(f"cleanup: {e}", file=sys.stderr)
        cls.cleanup = []
