"""The load generator and the process measurements behind bench/serve.py.

The clients live in spawned processes (one thread and one keep-alive `http.client` connection per
client), so they never share a GIL with the bench's bookkeeping. Only loopback is contacted.
"""

import http.client
import multiprocessing
import os
import signal
import threading
import time

HOST = "127.0.0.1"
HEADERS = {"Content-Type": "application/json"}


# ---- the load generator (runs in spawned worker processes) -------------------------------------------


def _client(port, bodies, first, t_start, t_measure, t_end, timeout, out):
    """One closed-loop client on one connection; keeps the answers completed inside [t_measure, t_end]."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    latencies, errors, i = [], [], first
    time.sleep(max(0.0, t_start - time.monotonic()))
    while time.monotonic() < t_end:
        body, i = bodies[i % len(bodies)], i + 1
        sent = time.monotonic()
        try:
            conn.request("POST", "/predict", body, HEADERS)
            response = conn.getresponse()
            data = response.read()
            problem = None if response.status == 200 else f"HTTP {response.status}: {data[:120]!r}"
        except (OSError, http.client.HTTPException) as error:
            conn.close()  # http.client reconnects on the next request
            problem = repr(error)
        done = time.monotonic()
        if t_measure <= done <= t_end:  # not warm-up, not finished after the window closed
            (errors.append(problem) if problem else latencies.append(done - sent))
    conn.close()
    out.append((latencies, errors))


def _worker(pipe):
    """Run load jobs sent by the bench: (port, bodies, clients, first, times…) → (latencies, errors)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the bench's to handle; it closes our pipe
    while True:
        try:
            port, bodies, clients, first, *times = pipe.recv()
        except (EOFError, TypeError):  # the bench is gone, or sent None
            return
        out = []
        threads = [
            threading.Thread(target=_client, args=(port, bodies, first + 97 * k, *times, out)) for k in range(clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        pipe.send(([x for lat, _ in out for x in lat], [e for _, err in out for e in err]))


class LoadGenerator:
    """A few long-lived client processes; `run` spreads the clients over them and merges the results."""

    def __init__(self, processes):
        context = multiprocessing.get_context("spawn")  # nothing inherited: no threads, no TF, no servers
        self.pipes, self.processes = [], []
        for _ in range(processes):
            ours, theirs = context.Pipe()
            self.processes.append(context.Process(target=_worker, args=(theirs,), daemon=True))
            self.processes[-1].start()
            self.pipes.append(ours)

    def cpu_seconds(self):
        return sum(cpu_seconds(process.pid) for process in self.processes)

    def close(self):
        """Ask the workers to leave; one still in a job (we were interrupted) is terminated."""
        for pipe in self.pipes:
            pipe.send(None)
        for process in self.processes:
            process.join(1)
            process.terminate()

    def run(self, port, bodies, clients, warmup, seconds, timeout):
        """→ (latencies in s, error messages, measured seconds)."""
        pipes = self.pipes[:clients]
        t_start = time.monotonic() + 0.3  # time for the workers to start their threads
        for n, pipe in enumerate(pipes):
            share = clients // len(pipes) + (n < clients % len(pipes))
            pipe.send((port, bodies, share, n * 1009, t_start, t_start + warmup, t_start + warmup + seconds, timeout))
        results = [pipe.recv() for pipe in pipes]
        return [x for lat, _ in results for x in lat], [e for _, err in results for e in err], seconds


# ---- measuring the server process -----------------------------------------------------------------


def cpu_seconds(pid):
    """User + system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_idle():
    """(idle, total) CPU time of the whole machine so far, in clock ticks, from /proc/stat."""
    with open("/proc/stat") as stat:
        ticks = [int(field) for field in stat.readline().split()[1:9]]  # user … steal
    return ticks[3] + ticks[4], sum(ticks)  # idle + iowait


def memory(pid):
    """VmRSS and its split (RssAnon, RssFile, RssShmem) in MB."""
    with open(f"/proc/{pid}/status") as status:
        pairs = (line.split(":") for line in status)
        return {k: int(v.split()[0]) / 1024 for k, v in pairs if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem")}


class RssSampler(threading.Thread):
    """Samples the server's memory every 20 ms; `take()` gives the peak since the last take and resets it.

    `timeline` keeps (monotonic time, RssAnon MB) once a second, to see whether memory grows under load.
    """

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.lock, self.peak, self.overall, self.stopped = pid, threading.Lock(), None, None, False
        self.timeline = []

    def anon_between(self, start, end):
        """RssAnon (MB) sampled in [start, end]: (the first, the last)."""
        inside = [anon for t, anon in self.timeline if start <= t <= end]
        return (inside[0], inside[-1]) if inside else (None, None)

    def run(self):
        while not self.stopped:
            try:
                sample = memory(self.pid)
            except OSError:
                return
            if "VmRSS" not in sample:  # a zombie: the server has exited
                return
            now = time.monotonic()
            if not self.timeline or now - self.timeline[-1][0] >= 1:
                self.timeline.append((now, sample["RssAnon"]))
            with self.lock:
                self.peak = max(self.peak or sample, sample, key=lambda s: s["VmRSS"])
                self.overall = max(self.overall or sample, sample, key=lambda s: s["VmRSS"])
            time.sleep(0.02)

    def take(self):
        with self.lock:
            peak, self.peak = self.peak or memory(self.pid), None
        return peak
