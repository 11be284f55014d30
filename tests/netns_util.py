"""Several hosts on one machine for the team tier's tests and benchmark: Linux network namespaces
joined by veth pairs through a router namespace, daemons started inside them, and a delay line
that stands in for a long network path.

    host "server" 10.231.1.2 --veth-- router 10.231.1.1 | 10.231.2.1 --veth-- host "alice" 10.231.2.2
                                                          | 10.231.3.1 --veth-- host "bob"   10.231.3.2

Every namespace and link is made here, under a name that carries this process's id, and deleted
on the way out (deleting a namespace deletes the veth ends inside it): nothing is added to the
namespace the tests run in. The test process itself reaches a namespace through a thread that
entered it (``Netns.call``): a socket belongs to the namespace of the thread that made it.

The delay line: ``tc qdisc ... netem`` needs the kernel's sch_netem, which not every kernel is
built with (minimal VM kernels often are not), so the router sends the packets of a delayed host
through a TUN device that a small process (``python -m tests.netns_util delay``) reads, holds for
the delay and writes back, after which the router forwards them on. Each packet to or from that host is held
once, so a delay of 10 ms each way makes a 20 ms round trip. The kernel segments and checksums
what goes into a TUN device that offers no offloads, so the packets written back are whole.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx

from .daemon_util import Daemon, _started
from .team_util import TeamServer, make_tls

T = TypeVar("T")
NETNS_DIR = Path("/run/netns")
PREFIX = "clarity-t"  # namespaces made here: clarity-t<pid>-<host>
REPO = Path(__file__).resolve().parents[1]


def unavailable() -> str | None:
    """Why namespaces cannot be made here (None: they can): root and ``ip netns`` are needed."""
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_SYS_ADMIN and CAP_NET_ADMIN)"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    probe = f"{PREFIX}{os.getpid()}-probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        return f"`ip netns add` fails here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


def sweep_stale() -> None:
    """Delete namespaces an earlier run of these tests left behind when it was killed (its pid is
    gone); namespaces of a run still alive, and anyone else's, are left alone."""
    for entry in NETNS_DIR.glob(f"{PREFIX}*-*") if NETNS_DIR.is_dir() else ():
        pid = entry.name.removeprefix(PREFIX).split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            subprocess.run(["ip", "netns", "del", entry.name], capture_output=True, check=False)


CLONE_NEWNET = 0x40000000


def _enter(name: str) -> None:
    """Move the calling thread into namespace ``name`` (setns(2); ``os.setns`` is Python 3.12+)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(NETNS_DIR / name, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"setns into {name}: {os.strerror(code)}")
    finally:
        os.close(fd)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60, every: float = 0.25) -> Any:
    """``check()``'s first truthy answer, asked every ``every`` seconds; AssertionError naming
    ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"not within {timeout}s: {what}")


class Netns:
    """One network namespace: commands run in it, and a thread of this process that lives in it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._thread: ThreadPoolExecutor | None = None

    def argv(self, *command: str) -> list[str]:
        """``command`` run inside this namespace (``ip netns exec`` replaces itself with it)."""
        return ["ip", "netns", "exec", self.name, *command]

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(self.argv(*command), capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"in {self.name}: {' '.join(command)}: {done.stderr.strip()}")
        return done

    def ip(self, *args: str) -> None:
        done = subprocess.run(["ip", "-n", self.name, *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"ip -n {self.name} {' '.join(args)}: {done.stderr.strip()}")

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on this namespace's thread: its sockets are this namespace's."""
        if self._thread is None:
            self._thread = ThreadPoolExecutor(
                1, f"netns-{self.name}", initializer=_enter, initargs=(self.name,)
            )
        return self._thread.submit(fn, *args, **kwargs).result()

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None


class Network:
    """A router namespace and one namespace per host, each host on its own /24 behind the
    router. A context manager: on the way out, every process started through ``spawn`` is
    stopped and every namespace made here is deleted, whatever failed."""

    def __init__(self, hosts: Sequence[str], subnet: str = "10.231") -> None:
        self.tag = f"{PREFIX}{os.getpid()}"
        self.subnet = subnet
        self.names = list(hosts)
        self.router = Netns(f"{self.tag}-router")
        self.hosts = {name: Netns(f"{self.tag}-{name}") for name in self.names}
        self._processes: list[subprocess.Popen[bytes]] = []
        self._delay: subprocess.Popen[bytes] | None = None

    def address(self, host: str) -> str:
        return f"{self.subnet}.{self.names.index(host) + 1}.2"

    def router_link(self, host: str) -> str:
        return f"r{self.names.index(host) + 1}"  # the router's end of the host's veth

    def __enter__(self) -> Network:
        sweep_stale()
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _build(self) -> None:
        for ns in (self.router, *self.hosts.values()):
            subprocess.run(["ip", "netns", "add", ns.name], check=True, capture_output=True)
            ns.ip("link", "set", "lo", "up")
        self.router.run("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        for sysctl in ("all", "default"):  # packets come back from the delay line's TUN device
            self.router.run("sysctl", "-q", "-w", f"net.ipv4.conf.{sysctl}.rp_filter=0")
        for number, host in enumerate(self.names, start=1):
            ns, link = self.hosts[host], self.router_link(host)
            ns.ip("link", "add", "eth0", "type", "veth", "peer", "name", link, "netns", self.router.name)
            ns.ip("addr", "add", f"{self.address(host)}/24", "dev", "eth0")
            ns.ip("link", "set", "eth0", "up")
            ns.ip("route", "add", "default", "via", f"{self.subnet}.{number}.1")
            self.router.ip("addr", "add", f"{self.subnet}.{number}.1/24", "dev", link)
            self.router.ip("link", "set", link, "up")

    def spawn(self, host: str, argv: Sequence[str], **popen: Any) -> subprocess.Popen[bytes]:
        """A process inside ``host``'s namespace, stopped when the network is closed."""
        ns = self.router if host == "router" else self.hosts[host]
        process = subprocess.Popen(ns.argv(*argv), **popen)
        self._processes.append(process)
        return process

    def cut(self, host: str) -> None:
        """Take ``host``'s own end of its link down: what it sends goes nowhere and nothing
        reaches it, as with a pulled cable (its peers' connections hang, none is refused)."""
        self.hosts[host].ip("link", "set", "eth0", "down")

    def restore(self, host: str) -> None:
        ns = self.hosts[host]
        ns.ip("link", "set", "eth0", "up")
        ns.ip("route", "replace", "default", "via", f"{self.subnet}.{self.names.index(host) + 1}.1")

    def drop(self, source: str, destination: str) -> None:
        """Drop, in the router, every packet from ``source`` to ``destination`` (one way only:
        what ``destination`` sends still arrives, answers to it do not)."""
        self.router.ip("route", "replace", "blackhole", "default", "table", "250")
        source_at, destination_at = self.address(source), self.address(destination)
        self.router.ip("rule", "add", "pref", "50", "from", source_at, "to", destination_at, "lookup", "250")

    def undrop(self) -> None:
        self._delete_rules(50)

    def _delete_rules(self, pref: int) -> None:
        for _ in range(64):  # `ip rule del` removes one rule of that preference per call
            gone = subprocess.run(
                ["ip", "-n", self.router.name, "rule", "del", "pref", str(pref)],
                capture_output=True,
                check=False,
            )
            if gone.returncode != 0:
                return

    def delay(self, hosts: Sequence[str], one_way_ms: float) -> None:
        """Hold every packet to or from each of ``hosts`` for ``one_way_ms`` in the router (a
        round trip through it pays twice that). Replaces a delay set before."""
        self.undelay()
        devices = [f"d{self.names.index(host) + 1}" for host in hosts]
        command = [sys.executable, "-m", "tests.netns_util", "delay", str(one_way_ms), *devices]
        self._delay = self.spawn("router", command, cwd=REPO, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while any(not self._has_link(device) for device in devices):
            if self._delay.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the delay line did not start (exit {self._delay.poll()})")
            time.sleep(0.05)
        for index, (host, device) in enumerate(zip(hosts, devices, strict=True)):
            table = str(200 + self.names.index(host))
            self.router.ip("link", "set", device, "up")
            self.router.ip("route", "replace", "default", "dev", device, "table", table)
            # Back from the delay line: forward as usual. Else: to or from the host, delay it.
            self.router.ip("rule", "add", "pref", str(100 + index), "iif", device, "lookup", "main")
            self.router.ip("rule", "add", "pref", "500", "iif", self.router_link(host), "lookup", table)
            net = f"{self.subnet}.{self.names.index(host) + 1}.0/24"
            self.router.ip("rule", "add", "pref", "500", "to", net, "lookup", table)

    def undelay(self) -> None:
        if self._delay is None:
            return
        for pref in (500, *range(100, 100 + len(self.names))):  # the TUN devices go with their process
            self._delete_rules(pref)
        _stop(self._delay)
        self._delay = None

    def _has_link(self, device: str) -> bool:
        shown = subprocess.run(
            ["ip", "-n", self.router.name, "link", "show", device], capture_output=True, check=False
        )
        return shown.returncode == 0

    def close(self) -> None:
        """Stop what runs in the namespaces, then delete them (and with them their links). A
        process still inside one (a daemon whose test failed before stopping it) is ended too:
        a namespace lives on, unnamed, as long as a process is in it."""
        for process in reversed(self._processes):
            _stop(process)
        for ns in (*self.hosts.values(), self.router):
            ns.close()
            _end_inside(ns.name)
            subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, check=False)


def _end_inside(name: str, timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL after ``timeout``, to each process in namespace ``name``."""

    def inside() -> list[int]:
        listed = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, check=False)
        return [int(pid) for pid in listed.stdout.split() if pid.isdigit() and int(pid) != os.getpid()]

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in inside():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while inside() and time.monotonic() < deadline:
            time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class HostDaemon(Daemon):
    """``clarity serve`` in a host's namespace; the test's requests to it go through that
    namespace's thread (it listens on the namespace's own loopback)."""

    def __init__(
        self, ns: Netns, root: Path, port: int, env: dict[str, str] | None = None, **kw: Any
    ) -> None:
        Daemon.__init__(self, root, port, env=env, **kw)
        self.ns = ns

    def start(self) -> HostDaemon:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.ns.argv(sys.executable, "-m", "clarity", "serve", *self.args),
                env=self.env(),
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        _started.append(self)  # stopped at the end of the session whatever fails
        return self

    def _wait_for(self, *args: Any, **kwargs: Any) -> float:
        return self.ns.call(super()._wait_for, *args, **kwargs)

    def api(self, method: str, path: str, project: str | None = None, **kwargs: Any) -> httpx.Response:
        return self.ns.call(super().api, method, path, project, **kwargs)

    def post_hook(self, event: str, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
        """What Claude Code's http hook does: POST the event's JSON to /hooks/<event>; the reply
        and the seconds it took."""

        def post() -> tuple[dict[str, Any], float]:
            started = time.perf_counter()
            answer = httpx.post(f"{self.url}/hooks/{event}", json=body, timeout=30)
            took = time.perf_counter() - started
            assert answer.status_code == 200, answer.text
            return (answer.json() if answer.content else {}), took

        return self.ns.call(post)

    def command_hook(self, event: str, body: dict[str, Any]) -> str:
        """What Claude Code runs for a command hook: the command line ``clarity hooks install``
        writes for ``event``, with the event on stdin, in this host's namespace; what it printed."""
        import json

        from clarity.integrations.claude_entries import client_command

        done = subprocess.run(
            self.ns.argv("sh", "-c", client_command(event, self.url)),
            input=json.dumps(body),
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout


class HostTeamServer(HostDaemon, TeamServer):
    """``clarity serve --team`` over TLS on ``address`` in a host's namespace, with a certificate
    for that address from a private CA made for the test."""

    def __init__(self, ns: Netns, root: Path, address: str, port: int, tls_dir: Path, **env: str) -> None:
        self.ca, cert, key = make_tls(tls_dir, host=address)
        team_env = {"CLARITY_TEAM__TLS_CERT": str(cert), "CLARITY_TEAM__TLS_KEY": str(key), **env}
        args = ["--team", "--host", address, "--port", str(port), "--storage-root", str(root)]
        HostDaemon.__init__(self, ns, root, port, env=team_env, args=args)
        self.url = f"https://{address}:{port}"

    def wait_healthy(self, timeout: float = 60) -> float:
        return self.ns.call(TeamServer.wait_healthy, self, timeout)

    def request(self, token: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call to /team/v1 with ``token``, from inside the server's namespace."""

        def call() -> httpx.Response:
            with self.client(token) as client:
                return client.request(method, path, **kwargs)

        return self.ns.call(call)


# -- the delay line: python -m tests.netns_util delay ONE_WAY_MS DEVICE... -------------------------

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000


def _tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def delay_line(one_way_ms: float, devices: Sequence[str]) -> None:
    """Read packets from each TUN device, and write each back into the device it came from
    ``one_way_ms`` later, in order. Runs until a signal stops it. CPU: one select per packet."""
    hold = one_way_ms / 1000
    fds = [_tun(device) for device in devices]
    held: deque[tuple[float, int, bytes]] = deque()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        timeout = max(0.0, held[0][0] - time.monotonic()) if held else None
        ready, _, _ = select.select(fds, [], [], timeout)
        now = time.monotonic()
        for fd in ready:
            with contextlib.suppress(BlockingIOError):
                while True:
                    held.append((now + hold, fd, os.read(fd, 65536)))
        while held and held[0][0] <= time.monotonic():
            _, fd, packet = held.popleft()
            try:
                os.write(fd, packet)
            except OSError as exc:  # a full queue or a device going down: the packet is lost, as on a wire
                if exc.errno not in (errno.EAGAIN, errno.EIO, errno.EINVAL):
                    raise


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "delay":
        delay_line(float(argv[1]), argv[2:])
        return 0
    print("usage: python -m tests.netns_util delay ONE_WAY_MS DEVICE...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
