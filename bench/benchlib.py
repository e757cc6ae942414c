"""What the side-by-side benchmark scripts (bench/*/run.py) share: ports, waiting for a process
to listen, its CPU and memory from /proc, a local nginx upstream, and stopping what was started
(nginx by SIGQUIT: its worker outlives a killed master)."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=10):
    """Until something accepts on 127.0.0.1:`port`; raises if `proc` exits first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def cpu_seconds(pid):
    """user+sys CPU of `pid` and its threads, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start_nginx(work, port, core=None, extra_main="", extra_server=""):
    """nginx on 127.0.0.1:`port` answering every request with 200 "ok\\n", one worker, its files
    in `work`; pinned to `core` if given. Never holds our stdout."""
    with open(f"{work}/nginx.conf", "w") as f:
        f.write(f"""daemon off; worker_processes 1; pid {work}/nginx.pid;
error_log {work}/nginx.err; events {{ worker_connections 8192; }} {extra_main}
http {{ access_log off; server {{ listen 127.0.0.1:{port}; keepalive_requests 1000000;
{extra_server} location / {{ return 200 "ok\\n"; }} }} }}
""")
    cmd = ["nginx", "-c", f"{work}/nginx.conf", "-p", work]
    if core is not None:
        cmd = ["taskset", "-c", core] + cmd
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, p)
    return p


def stop_all(procs, nginx=None):
    for p in procs:
        p.send_signal(signal.SIGQUIT if p is nginx else signal.SIGKILL)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


def require(*tools):
    """Exits naming the first of `tools` not installed."""
    for tool in tools:
        if shutil.which(tool) is None:
            sys.exit(f"needs {tool}")


def issue_certs(remora, work, identities):
    """A development CA in `work`/ca and, for each name -> SPIFFE ID of `identities`, a workload
    certificate in `work`/<name> (cert.pem, key.pem, ca.pem; "localhost" as a DNS name too)."""
    def run(*args):
        subprocess.run([remora, "cert", *args], check=True, capture_output=True, text=True)
    run("ca", "--out", f"{work}/ca")
    for name, spiffe_id in identities.items():
        run("issue", "--ca", f"{work}/ca", "--spiffe-id", spiffe_id, "--dns", "localhost",
            "--out", f"{work}/{name}")
