#!/usr/bin/python3
"""remora TCP benchmark: L4 relay throughput, CPU seconds per GiB and idle RSS, vs haproxy.

Run on demand (not part of the test suite):   bench/run [--quick] [options]

Topology (ports are picked free at start; traffic only on 127.0.0.1):

    CPU 0 (--load-core)                                CPU 1 (--proxy-core)
    iperf3 client  --127.0.0.1-->  proxy under test (1 worker / 1 thread)
    iperf3 server  <--127.0.0.1--  (remora `kind: tcp`, haproxy `mode tcp`)
    "direct": client -> server with no proxy (both on CPU 0)

Each run starts a fresh iperf3 server and a fresh proxy, sends an unmeasured warm-up, then
samples the proxy's utime+stime (/proc/PID/stat, all threads) and per-CPU busy time
(/proc/stat) around one measured iperf3 run. Markdown goes to stdout, progress to stderr, raw
JSON to bench/results/. Python 3 stdlib only; see bench/README.md for how to read the figures.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024
GIB = 1024 ** 3
RSS_FLOOR_MIB = 10.0  # the project's floor for an idle two-listener remora

# iperf3 options per scenario. `parallel` is iperf3 -P (data connections; the control
# connection goes through the proxy too). `mode`: "" client->server, "-R" server->client,
# "--bidir" both at once (bytes of both directions are counted).
SCENARIOS = {
    "stream-1": dict(parallel=1, mode="", what="1 connection, bulk client -> upstream"),
    "stream-64": dict(parallel=64, mode="", what="64 parallel connections, bulk client -> upstream"),
    "bidir-1": dict(parallel=1, mode="--bidir", what="1 connection each way at once (client <-> upstream)"),
    "rev-1": dict(parallel=1, mode="-R", what="1 connection, bulk upstream -> client"),
}
DEFAULT_SCENARIOS = "stream-1,stream-64,bidir-1"
DEFAULT_PROXIES = "direct,haproxy,haproxy-buf64k,remora"

# Both proxies get one worker and no logging; everything else stays at its default, because the
# point is what a user gets out of the box. The optional haproxy-* variants are for reading the
# default row: haproxy relays through 16 KiB buffers by default (remora reads up to 64 KiB at a
# time), and it can splice in the kernel, which remora cannot. They are (global, listen) additions.
HAPROXY_VARIANTS = {
    "haproxy": ("", ""),
    "haproxy-splice": ("", "    option splice-auto\n"),
    "haproxy-buf64k": ("    tune.bufsize 65536\n", ""),
}
ALL_PROXIES = ["direct", "remora", *HAPROXY_VARIANTS]

HAPROXY_CFG = """\
global
    nbthread 1
    maxconn 4096
{global_extra}defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
listen bench
    bind 127.0.0.1:{port}
{listen_extra}    server upstream 127.0.0.1:{upstream}
"""

# drain_timeout is short so SIGTERM between runs never waits on a straggler. The admin port is
# ephemeral so the run never collides with a developer's remora on the default 15000.
REMORA_CFG = """\
admin:
  address: 127.0.0.1:0
workers: 1
drain_timeout: 1s
log_level: warn
listeners:
  - name: bench
    address: 127.0.0.1:{port}
    kind: tcp
    cluster: upstream
clusters:
  - name: upstream
    endpoints:
      - address: 127.0.0.1:{upstream}
"""

# The idle-RSS config: two tcp listeners, one cluster, admin enabled.
REMORA_RSS_CFG = """\
admin:
  address: 127.0.0.1:0
{workers_line}log_level: info
listeners:
  - name: in-a
    address: 127.0.0.1:0
    kind: tcp
    cluster: app
  - name: in-b
    address: 127.0.0.1:0
    kind: tcp
    cluster: app
clusters:
  - name: app
    endpoints:
      - address: 127.0.0.1:{upstream}
"""

HAPROXY_RSS_CFG = """\
global
    nbthread 1
    maxconn 4096
    stats socket {workdir}/haproxy.sock
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
listen in-a
    bind 127.0.0.1:{port_a}
    server upstream 127.0.0.1:{upstream}
listen in-b
    bind 127.0.0.1:{port_b}
    server upstream 127.0.0.1:{upstream}
"""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Setup


def ensure_tools():
    """Installs missing Debian packages; the bench must run on a fresh box."""
    need = {"iperf3": "iperf3", "haproxy": "haproxy", "taskset": "util-linux"}
    missing = sorted({pkg for tool, pkg in need.items() if shutil.which(tool) is None})
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"missing {', '.join(missing)}; install with: apt-get install -y {' '.join(missing)}")
    log(f"installing {' '.join(missing)} ...")
    # noninteractive: iperf3's postinst asks whether to start a daemon.
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if subprocess.run(cmd, env=env, stdout=sys.stderr).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, stdout=sys.stderr, check=True)
        subprocess.run(cmd, env=env, stdout=sys.stderr, check=True)


def free_ports(n):
    """n distinct free loopback ports. Holding all sockets open until the end keeps them distinct;
    the small race with other programs afterwards is acceptable for a bench."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def is_listening(port):
    """Checks /proc/net/tcp instead of connecting: a probe connection would reach iperf3's server
    as a bogus control connection (directly, or relayed by the proxy)."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == want and fields[3] == "0A":
                return True
    return False


def wait_until(pred, timeout, what, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}")
        time.sleep(0.02)
    raise RuntimeError(f"{what}: not ready after {timeout}s")


def stop(proc, grace=5.0):
    """SIGTERM (remora drains, haproxy stops), then SIGKILL; only ever our own child by PID."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# ---------------------------------------------------------------------------------------------
# /proc sampling


def proc_cpu(pid):
    """(utime, stime, minor faults) of the whole process: the tgid's stat sums every thread, live
    and exited. Minor faults are kept because a relay that keeps re-faulting fresh buffer pages is
    the classic way to burn CPU per byte without showing up in user time."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) / CLK_TCK, int(rest[12]) / CLK_TCK, int(rest[7])


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, val = line.partition(":")
            val = val.split()
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM"):
                out[key] = int(val[0])  # kB
            elif key == "Threads":
                out[key] = int(val[0])
    return out


def cpu_times():
    """Per-CPU (busy, user, steal) seconds from /proc/stat. busy includes softirq: loopback delivery
    runs there and, with tick accounting, is charged to whichever task was running. user is kept
    apart for the noise guard (see one_run)."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                name, *v = line.split()
                user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) / CLK_TCK for x in v[:8])
                out[int(name[3:])] = (user + nice + system + irq + softirq, user + nice, steal)
    return out


def children_cpu():
    """(user, user+system) seconds of reaped children: how the short-lived iperf3 client is measured."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime, ru.ru_utime + ru.ru_stime


# ---------------------------------------------------------------------------------------------
# Proxies


class Proxy:
    """A proxy under test, started fresh for every run and pinned to the proxy core."""

    def __init__(self, name, args, workdir, port, upstream):
        self.name, self.args, self.workdir = name, args, workdir
        self.port, self.upstream = port, upstream
        self.proc = None
        self.cmd = None
        self.config = None

    def start(self):
        if self.name == "direct":
            return
        if self.name == "remora":
            self.config = REMORA_CFG.format(port=self.port, upstream=self.upstream)
            path = os.path.join(self.workdir, "remora.yaml")
            self.cmd = ["taskset", "-c", str(self.args.proxy_core), self.args.remora, "proxy", "-c", path]
        else:
            global_extra, listen_extra = HAPROXY_VARIANTS[self.name]
            self.config = HAPROXY_CFG.format(port=self.port, upstream=self.upstream,
                                             global_extra=global_extra, listen_extra=listen_extra)
            path = os.path.join(self.workdir, "haproxy.cfg")
            # -db: foreground, no daemon, no master process, so the PID we hold is the worker.
            self.cmd = ["taskset", "-c", str(self.args.proxy_core), "haproxy", "-db", "-f", path]
        with open(path, "w") as f:
            f.write(self.config)
        self.errlog = os.path.join(self.workdir, f"{self.name}.log")
        with open(self.errlog, "w") as err:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        try:
            wait_until(lambda: is_listening(self.port), 10, f"{self.name} listener", self.proc)
        except RuntimeError as e:
            with open(self.errlog, errors="replace") as f:
                raise RuntimeError(f"{e}; log: {f.read()[-400:].strip()}") from None

    @property
    def target_port(self):
        return self.upstream if self.name == "direct" else self.port

    def cpu(self):
        return proc_cpu(self.proc.pid) if self.proc else None

    def status(self):
        return proc_status(self.proc.pid) if self.proc else {}

    def stop(self):
        stop(self.proc)
        self.proc = None


# ---------------------------------------------------------------------------------------------
# One run


def iperf_client(args, port, scen, seconds, json_out=True):
    cmd = ["taskset", "-c", str(args.load_core), "iperf3", "-c", "127.0.0.1", "-p", str(port),
           "-t", str(seconds), "-P", str(scen["parallel"]), "--connect-timeout", "3000"]
    if scen["mode"]:
        cmd.append(scen["mode"])
    if json_out:
        cmd.append("-J")
    return cmd


def run_client(cmd, seconds):
    """Runs the iperf3 client bounded in time. iperf3's server refuses a test while it is still
    tearing down the previous one ("server is busy"), so that one error is retried."""
    for attempt in range(3):
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        try:
            out, err = p.communicate(timeout=seconds + 20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise RuntimeError(f"iperf3 client timed out: {' '.join(cmd)}")
        if p.returncode == 0:
            return out
        if "busy" in (out + err) and attempt < 2:
            time.sleep(0.5)
            continue
        raise RuntimeError(f"iperf3 client failed ({p.returncode}): {(err or out).strip()[-400:]}")


def received_bytes(result):
    end = result["end"]
    total = end["sum_received"]["bytes"]
    seconds = end["sum_received"]["seconds"]
    if "sum_received_bidir_reverse" in end:
        total += end["sum_received_bidir_reverse"]["bytes"]
    return total, seconds


def wait_quiet(args):
    """On a shared box (a build next door) a run is only worth taking when both bench cores are
    idle. Waits, up to --quiet-wait seconds, for a 0.5 s window in which neither core is more than
    --quiet-pct busy. Returns the seconds waited; the run goes ahead either way and the noise
    guard in main() judges it afterwards."""
    start = time.monotonic()
    while True:
        c0 = cpu_times()
        time.sleep(0.5)
        c1 = cpu_times()
        busy = max(100 * (c1[n][0] - c0[n][0] + c1[n][2] - c0[n][2]) / 0.5 for n in (args.proxy_core, args.load_core))
        waited = time.monotonic() - start
        if busy <= args.quiet_pct or waited >= args.quiet_wait:
            return round(waited - 0.5, 1)


def one_run(args, proxy_name, scen_name, rep, ports, workdir):
    scen = SCENARIOS[scen_name]
    server_port, proxy_port = ports
    # A fresh server per run: a wedged test can never leak into the next one.
    server_cmd = ["taskset", "-c", str(args.load_core), "iperf3", "-s", "-B", "127.0.0.1", "-p", str(server_port)]
    server = subprocess.Popen(server_cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    proxy = Proxy(proxy_name, args, workdir, proxy_port, server_port)
    try:
        wait_until(lambda: is_listening(server_port), 10, "iperf3 server", server)
        proxy.start()
        if args.warmup > 0:
            run_client(iperf_client(args, proxy.target_port, scen, args.warmup, json_out=False), args.warmup)

        cmd = iperf_client(args, proxy.target_port, scen, args.duration)
        before = sample(proxy, server)
        out = run_client(cmd, args.duration)
        after = sample(proxy, server)
        status = proxy.status()
    finally:
        proxy.stop()
        stop(server)

    result = json.loads(out)
    nbytes, seconds = received_bytes(result)
    gib = nbytes / GIB
    d = {k: after[k] - before[k] for k in before if k != "cores" and before[k] is not None}
    wall = d["t"]
    proxy_cpu = d["proxy_user"] + d["proxy_sys"] if "proxy_user" in d else None

    def core(n):
        return [x1 - x0 for x0, x1 in zip(before["cores"][n], after["cores"][n])]

    pbusy, puser, psteal = core(args.proxy_core)
    lbusy, luser, lsteal = core(args.load_core)
    # "Foreign" = user time on a bench core that none of our processes explain (a compiler next
    # door, other tenants), plus steal. Only user time is compared: kernel time on these cores
    # includes softirq loopback delivery that tick accounting may charge to idle or to another of
    # our processes, so a busy-minus-ours figure would flag perfectly clean runs.
    proxy_foreign = max(0.0, puser - d.get("proxy_user", 0.0)) + psteal
    load_foreign = max(0.0, luser - d["load_user"]) + lsteal
    return {
        "proxy": proxy_name,
        "scenario": scen_name,
        "rep": rep,
        "load_cmd": cmd,
        "proxy_cmd": proxy.cmd,
        "proxy_config": proxy.config,
        "bytes": nbytes,
        "seconds": seconds,
        "gbit_s": nbytes * 8 / seconds / 1e9,
        "window_s": wall,
        "proxy_cpu_s": proxy_cpu,
        "proxy_user_s": d.get("proxy_user"),
        "cpu_s_per_gib": None if proxy_cpu is None else proxy_cpu / gib,
        "minflt_per_gib": None if proxy_cpu is None else d["proxy_minflt"] / gib,
        "proxy_util_pct": None if proxy_cpu is None else 100 * proxy_cpu / wall,
        "load_cpu_s": d["load_cpu"],
        "load_util_pct": 100 * d["load_cpu"] / wall,
        "proxy_core_busy_pct": 100 * pbusy / wall,
        "load_core_busy_pct": 100 * lbusy / wall,
        "proxy_core_foreign_pct": None if proxy_cpu is None else 100 * proxy_foreign / wall,
        "load_core_foreign_pct": 100 * load_foreign / wall,
        "peak_rss_kib": status.get("VmHWM"),
        "threads": status.get("Threads"),
        "retransmits": result["end"].get("sum_sent", {}).get("retransmits"),
    }


def sample(proxy, server):
    """One snapshot of everything a run's figures are deltas of."""
    su, ss, _ = proc_cpu(server.pid)
    cu, ct = children_cpu()  # the iperf3 client, once reaped
    p = proxy.cpu() if proxy.proc else (None, None, None)
    return {
        "t": time.monotonic(),
        "cores": cpu_times(),
        "proxy_user": p[0], "proxy_sys": p[1], "proxy_minflt": p[2],
        "load_user": su + cu, "load_cpu": su + ss + ct,
    }


def measured_run(args, proxy_name, scen_name, rep, ports, workdir):
    waited = wait_quiet(args)
    if waited > 1:
        log(f"    waited {waited:.0f} s for the bench cores to go idle")
    run = one_run(args, proxy_name, scen_name, rep, ports, workdir)
    run["quiet_wait_s"] = waited
    return run


def noise(run):
    # "direct" leaves the proxy core unused (its foreign % is None), so only the load core counts.
    return max(run["load_core_foreign_pct"], run["proxy_core_foreign_pct"] or 0.0)


# ---------------------------------------------------------------------------------------------
# Idle RSS


def idle_rss(args, workdir, samples):
    """remora with the two-listener config (default workers and workers: 1), haproxy with the
    same two listeners for reference; RSS read 1 s after the proxy reported it is up."""
    results = []
    upstream, port_a, port_b = free_ports(3)
    variants = [("remora", "workers default", ""), ("remora", "workers: 1", "workers: 1\n"),
                ("haproxy", "nbthread 1", None)]
    for name, label, workers_line in variants:
        for i in range(samples):
            errlog = os.path.join(workdir, f"rss-{name}.log")
            if name == "remora":
                path = os.path.join(workdir, "rss.yaml")
                with open(path, "w") as f:
                    f.write(REMORA_RSS_CFG.format(workers_line=workers_line, upstream=upstream))
                cmd = [args.remora, "proxy", "-c", path]
            else:
                path = os.path.join(workdir, "rss.cfg")
                with open(path, "w") as f:
                    f.write(HAPROXY_RSS_CFG.format(workdir=workdir, port_a=port_a, port_b=port_b, upstream=upstream))
                cmd = ["haproxy", "-db", "-f", path]
            with open(errlog, "w") as err:
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
            try:
                if name == "remora":
                    wait_until(lambda: "started:" in open(errlog).read(), 10, "remora start", proc)
                else:
                    wait_until(lambda: is_listening(port_a) and is_listening(port_b), 10, "haproxy start", proc)
                time.sleep(1.0)
                st = proc_status(proc.pid)
                text = open(errlog).read()
            finally:
                stop(proc)
            workers = None
            if name == "remora" and " started: " in text:
                workers = int(text.split(" started: ", 1)[1].split()[0])
            results.append({"proxy": name, "variant": label, "sample": i, "workers": workers, **st})
    return results


# ---------------------------------------------------------------------------------------------
# Report


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, nd=2):
    return "n/a" if x is None else f"{x:.{nd}f}"


def summarize(runs, scenarios, proxies):
    """Absolute figures are medians over reps; ratios are medians of per-rep paired ratios, so
    a slow patch of machine time hits both sides of a pair."""
    summary = {}
    for scen in scenarios:
        summary[scen] = {}
        by_rep = {}
        for r in runs:
            if r["scenario"] == scen:
                by_rep.setdefault(r["rep"], {})[r["proxy"]] = r
        for p in proxies:
            rs = [r for r in runs if r["scenario"] == scen and r["proxy"] == p]
            if not rs:
                continue
            s = {"reps": len(rs)}
            for k in ("gbit_s", "cpu_s_per_gib", "minflt_per_gib", "proxy_util_pct", "load_core_busy_pct",
                      "proxy_core_foreign_pct", "load_core_foreign_pct", "peak_rss_kib"):
                vals = [r[k] for r in rs if r[k] is not None]
                s[k] = med(vals)
                s[k + "_min"] = min(vals) if vals else None
                s[k + "_max"] = max(vals) if vals else None

            def paired(key, ref):
                return [rep[p][key] / rep[ref][key] for _, rep in sorted(by_rep.items())
                        if p in rep and ref in rep and rep[p][key] and rep[ref][key]]

            pairs = [("gbit_x_direct", "gbit_s", "direct")]
            for ref in HAPROXY_VARIANTS:
                pairs += [(f"gbit_x_{ref}", "gbit_s", ref), (f"cpu_x_{ref}", "cpu_s_per_gib", ref)]
            for name, key, ref in pairs:
                s[name + "_reps"] = paired(key, ref)
                s[name] = med(s[name + "_reps"])
            summary[scen][p] = s
    return summary


def markdown(meta, summary, rss, failures, proxies):
    out = []
    w = out.append
    w("# remora TCP relay benchmark")
    w("")
    w(f"- date: {meta['date']}; host: {meta['host']}; kernel {meta['kernel']}; {meta['cpu']} ({meta['ncpu']} CPUs)")
    w(f"- remora: `{meta['remora']}` ({meta['remora_version']}); {meta['haproxy_version']}; {meta['iperf3_version']}")
    w(f"- proxy on CPU {meta['proxy_core']} (`taskset -c {meta['proxy_core']}`, 1 worker / `nbthread 1`); "
      f"iperf3 client + server on CPU {meta['load_core']}")
    w(f"- {meta['reps']} reps x {meta['duration']} s per cell (+{meta['warmup']} s unmeasured warm-up), "
      f"order alternating per rep; medians shown, min-max in brackets")
    w(f"- command: `{meta['command']}`")
    if meta["noisy_runs_kept"]:
        w(f"- **noisy:** {len(meta['noisy_runs_kept'])} runs kept with foreign load above "
          f"{meta['retry_noisy_pct']:.0f} % on a bench core: {', '.join(meta['noisy_runs_kept'])}")
    w("")
    for scen, cells in summary.items():
        w(f"## {scen}: {SCENARIOS[scen]['what']}")
        w("")
        w("| proxy | Gbit/s | x haproxy | x direct | CPU s/GiB | CPU/GiB x haproxy | proxy util % | "
          "page faults/GiB | load core % | foreign % (proxy/load core) |")
        w("|---|---|---|---|---|---|---|---|---|---|")
        for p, s in cells.items():
            def rng(k, nd=2):
                return "n/a" if s[k] is None else f"{fmt(s[k], nd)} [{fmt(s[k + '_min'], nd)}-{fmt(s[k + '_max'], nd)}]"

            w(f"| {p} | {rng('gbit_s')} | {fmt(s['gbit_x_haproxy'])} | {fmt(s['gbit_x_direct'])} | "
              f"{rng('cpu_s_per_gib', 3)} | {fmt(s['cpu_x_haproxy'])} | {fmt(s['proxy_util_pct'], 0)} | "
              f"{fmt(s['minflt_per_gib'], 0)} | {fmt(s['load_core_busy_pct'], 0)} | "
              f"{fmt(s['proxy_core_foreign_pct'], 0)} / {fmt(s['load_core_foreign_pct'], 0)} |")
        w("")
    refs = [p for p in HAPROXY_VARIANTS if p in proxies]
    if "remora" in proxies and refs:
        w("### remora / haproxy (median of paired per-rep ratios)")
        w("")
        w("| scenario | vs | throughput ratio (>1 = remora faster) | CPU s/GiB ratio (<1 = remora cheaper) | "
          "per-rep CPU s/GiB ratios |")
        w("|---|---|---|---|---|")
        for scen, cells in summary.items():
            s = cells.get("remora")
            for ref in refs if s else []:
                reps = ", ".join(fmt(x) for x in s[f"cpu_x_{ref}_reps"])
                w(f"| {scen} | {ref} | {fmt(s[f'gbit_x_{ref}'])} | {fmt(s[f'cpu_x_{ref}'])} | {reps} |")
        w("")
    if rss:
        w("## Idle RSS (2 tcp listeners, 1 cluster, admin on; 1 s after start, no traffic)")
        w("")
        w(f"| proxy | config | workers | VmRSS MiB | RssAnon MiB | RssFile MiB | threads | < {RSS_FLOOR_MIB:.0f} MiB |")
        w("|---|---|---|---|---|---|---|---|")
        groups = {}
        for r in rss:
            groups.setdefault((r["proxy"], r["variant"]), []).append(r)
        for (p, v), rs in groups.items():
            vm = med([r.get("VmRSS") for r in rs]) / 1024
            anon = med([r.get("RssAnon") for r in rs]) / 1024
            fil = med([r.get("RssFile") for r in rs]) / 1024
            ok = ("yes" if vm < RSS_FLOOR_MIB else "**no**") if p == "remora" else "(reference)"
            workers = rs[0]["workers"] if rs[0]["workers"] is not None else "1 thread"
            w(f"| {p} | {v} | {workers} | {vm:.2f} | {anon:.2f} | {fil:.2f} | {rs[0].get('Threads')} | {ok} |")
        w("")
    w("How to read: `x haproxy` columns are the median of per-repetition remora/haproxy ratios. "
      "proxy util ~100 % means the proxy core was the bottleneck, so Gbit/s compares proxies; "
      "below that, CPU s/GiB is the fairer figure. Foreign % above ~10 % means the run shared "
      "its cores with something else. See bench/README.md.")
    if failures:
        w("")
        w("## Failed runs")
        w("")
        for f in failures:
            w(f"- {f}")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------


def tool_version(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 rep, 2 s runs, 1 RSS sample: a smoke test (~1 min)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="measured seconds per run (iperf3 -t; integer)")
    ap.add_argument("--warmup", type=int, default=1, help="unmeasured seconds before each run (0 = none)")
    ap.add_argument("--scenarios", default=DEFAULT_SCENARIOS, help=f"comma list of {','.join(SCENARIOS)}")
    ap.add_argument("--proxies", default=DEFAULT_PROXIES, help=f"comma list of {','.join(ALL_PROXIES)}")
    ap.add_argument("--remora", default=os.path.join(REPO_DIR, "build/release/remora"))
    ap.add_argument("--proxy-core", type=int, default=1)
    ap.add_argument("--load-core", type=int, default=0)
    ap.add_argument("--rss-samples", type=int, default=3)
    ap.add_argument("--no-rss", action="store_true", help="skip the idle RSS measurement")
    ap.add_argument("--quiet-wait", type=float, default=20.0,
                    help="before each run, wait up to this many seconds for the bench cores to go idle")
    ap.add_argument("--quiet-pct", type=float, default=10.0, help="what idle means for --quiet-wait (busy %%)")
    ap.add_argument("--retry-noisy", type=float, default=10.0,
                    help="re-run once if foreign %% on either core exceeds this (keeps the quieter run)")
    ap.add_argument("--max-retries", type=int, default=6)
    ap.add_argument("--json", help="raw results path (default bench/results/tcp-bench-<time>.json)")
    ap.add_argument("--md", help="also write the markdown report here")
    ap.add_argument("--no-install", action="store_true", help="never call apt-get")
    args = ap.parse_args(argv)
    if args.quick:
        args.reps, args.duration, args.rss_samples = 1, 2, 1
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    args.proxies = [p for p in args.proxies.split(",") if p]
    for s in args.scenarios:
        if s not in SCENARIOS:
            ap.error(f"unknown scenario {s}")
    for p in args.proxies:
        if p not in ALL_PROXIES:
            ap.error(f"unknown proxy {p}")
    if args.duration < 1 or args.reps < 1:
        ap.error("--duration and --reps must be >= 1")
    return args


def main(argv):
    args = parse_args(argv)
    started = time.monotonic()
    if not args.no_install:
        ensure_tools()
    if "remora" in args.proxies or not args.no_rss:
        if not os.access(args.remora, os.X_OK):
            sys.exit(f"{args.remora} not found; build the release preset or pass --remora")
    if max(args.proxy_core, args.load_core) >= os.cpu_count():
        sys.exit(f"need CPUs {args.load_core} and {args.proxy_core}; this machine has {os.cpu_count()}")

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    json_path = args.json or os.path.join(BENCH_DIR, "results", f"tcp-bench-{stamp}.json")
    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "host": platform.node(), "kernel": platform.release(), "cpu": cpu_model(), "ncpu": os.cpu_count(),
        "remora": os.path.relpath(args.remora, REPO_DIR) if args.remora.startswith(REPO_DIR) else args.remora,
        "remora_version": tool_version([args.remora, "version"]),
        "haproxy_version": tool_version(["haproxy", "-v"]),
        "iperf3_version": tool_version(["iperf3", "--version"]),
        "proxy_core": args.proxy_core, "load_core": args.load_core,
        "reps": args.reps, "duration": args.duration, "warmup": args.warmup,
        "scenarios": {s: SCENARIOS[s] for s in args.scenarios}, "proxies": args.proxies,
        "command": " ".join(["bench/tcp_bench.py", *argv]) if argv else "bench/tcp_bench.py",
        "rss_configs": {"remora": REMORA_RSS_CFG, "haproxy": HAPROXY_RSS_CFG},
    }

    runs, failures, retries = [], [], 0
    total = len(args.scenarios) * args.reps * len(args.proxies)
    n = 0
    with tempfile.TemporaryDirectory(prefix="remora-bench-") as workdir:
        ports = free_ports(2)
        for scen in args.scenarios:
            for rep in range(args.reps):
                order = args.proxies if rep % 2 == 0 else list(reversed(args.proxies))
                for proxy in order:
                    n += 1
                    log(f"[{n}/{total}] {scen} rep {rep + 1} {proxy}")
                    try:
                        run = measured_run(args, proxy, scen, rep, ports, workdir)
                        if noise(run) > args.retry_noisy and retries < args.max_retries:
                            retries += 1
                            log(f"    noisy ({noise(run):.0f} % foreign), running it again")
                            again = measured_run(args, proxy, scen, rep, ports, workdir)
                            again["retried"] = True
                            run = min(run, again, key=noise)
                    except (RuntimeError, OSError, ValueError, KeyError) as e:
                        failures.append(f"{scen} rep {rep + 1} {proxy}: {e}")
                        log(f"    FAILED: {e}")
                        continue
                    cpu = "" if run["cpu_s_per_gib"] is None else f", {run['cpu_s_per_gib']:.3f} CPU s/GiB"
                    log(f"    {run['gbit_s']:.2f} Gbit/s{cpu}, proxy util {fmt(run['proxy_util_pct'], 0)} %, "
                        f"foreign {noise(run):.0f} %")
                    runs.append(run)
        rss = []
        if not args.no_rss:
            log("idle RSS ...")
            try:
                rss = idle_rss(args, workdir, args.rss_samples)
            except (RuntimeError, OSError) as e:
                failures.append(f"idle RSS: {e}")

    summary = summarize(runs, args.scenarios, args.proxies)
    meta["wall_s"] = round(time.monotonic() - started, 1)
    meta["noise_retries"] = retries
    meta["noisy_runs_kept"] = [f"{r['scenario']} rep {r['rep'] + 1} {r['proxy']} ({noise(r):.0f} %)"
                               for r in runs if noise(r) > args.retry_noisy]
    meta["retry_noisy_pct"] = args.retry_noisy
    report = markdown(meta, summary, rss, failures, args.proxies)
    os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
    with open(json_path, "w") as f:
        json.dump({"meta": meta, "summary": summary, "runs": runs, "idle_rss": rss, "failures": failures}, f, indent=1)
    if args.md:
        with open(args.md, "w") as f:
            f.write(report)
    sys.stdout.write(report)
    log(f"raw JSON: {json_path} ({meta['wall_s']} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
