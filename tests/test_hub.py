"""The room on a real JupyterHub: deploy/jupyterhub/jupyterhub_config.py, as shipped.

Three learners, each a distinct system user, get a server of their own through the hub's
REST API; on each learner's own kernels notebooks 00 and 06 run at the same time, and
every cell is checked as nbval checks it. Both database modes: each learner's embedded
PostgreSQL, and one shared server where each learner has a role of their own. Then:
no learner reaches another's database; the same check fails when a kernel cannot reach
its database; the hub's login lets in learners with their own password only; and when
the hub stops, nothing of a learner is left running.

Needs root (system users), npm (the hub's proxy, installed into deploy/jupyterhub/ by
`npm ci`), and a Python of this minor version that other users can run (the project's
.venv may sit where they cannot enter, e.g. under /root). Without them it skips, saying
why; under CI=true it fails instead. The learners' environment is the project's own
installed packages, hard-linked into a folder they can read (what make-env.sh builds
with pip, without a minute of installing); dbkit comes from each learner's copy.

Figures (memory, start-up, CPU) go to test-artifacts/hub-figures.json; INSTRUCTORS.md
quotes them. The learners (dbkit-hub-l1..l3, with the comment below) are made fresh for
each mode and removed afterwards, with their homes.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

from dbkit.settings import PROJECT_ROOT
from tests.helpers import DB_VARIABLES, free_port
from tests.remote_notebook import RemoteKernel, check_notebook

HUB_DIR = PROJECT_ROOT / "deploy" / "jupyterhub"
PROXY = HUB_DIR / "node_modules" / ".bin" / "configurable-http-proxy"
LEARNERS = ("dbkit-hub-l1", "dbkit-hub-l2", "dbkit-hub-l3")
OUTSIDER = "dbkit-hub-out"  # a system user who is not in the learners' group
PG_USER = "dbkit-hub-pg"  # runs the shared server
GROUP = "dbkit-learners"  # the group the config lets in
MARK = "dbkit hub test user"  # GECOS comment: we remove only users that carry it
NOTEBOOKS = ("00_setup.ipynb", "06_scoped_session.ipynb")
FIGURES = PROJECT_ROOT / "test-artifacts" / "hub-figures.json"
PY = f"python{sys.version_info.major}.{sys.version_info.minor}"


def need(condition: object, reason: str) -> None:
    """Skip with the reason, except in CI, where a missing piece is a failure."""
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the hub test, but: {reason}")
        pytest.skip(reason)


def run(*argv: str | Path, **kw) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run([str(a) for a in argv], check=True, capture_output=True, text=True, **kw)


def reachable_by_all(path: Path) -> bool:
    real = path.resolve()
    return real.exists() and all(p.stat().st_mode & 0o001 for p in [real, *real.parents])


def system_python() -> Path | None:
    """A python of this minor version that every user can run."""
    candidates = [
        Path(sys.base_prefix) / "bin" / PY,
        Path("/usr/bin") / PY,
        Path("/usr/local/bin") / PY,
    ]
    return next((p for p in candidates if reachable_by_all(p)), None)


# --- what the hub needs ---------------------------------------------------------------


@pytest.fixture(scope="module")
def requirements() -> Path:
    need(os.geteuid() == 0, "the hub test needs root: it creates system users (CI runs as root)")
    need(shutil.which("useradd"), "useradd is missing (package passwd)")
    python = system_python()
    need(python, f"no {PY} that other users can run (apt-get install {PY})")
    if not PROXY.exists():
        need(
            shutil.which("npm"), "npm is missing: apt-get install npm (for configurable-http-proxy)"
        )
        with tempfile.TemporaryDirectory() as cache:  # npm's cache: thrown away, not ~/.npm
            run("npm", "ci", "--prefix", HUB_DIR, "--cache", cache, "--no-audit", "--no-fund",
                "--no-update-notifier", timeout=300)  # fmt: skip
    return python  # type: ignore[return-value]


@pytest.fixture(scope="module")
def course_env(requirements: Path) -> Iterator[Path]:
    """The learners' Python environment, in a folder every user can read (not write)."""
    root = Path(tempfile.mkdtemp(prefix="dbkit-hub-env-"))
    root.chmod(0o755)
    env = root / "env"
    run(requirements, "-m", "venv", "--without-pip", env)
    source = Path(sys.prefix)
    for part in (f"lib/{PY}/site-packages", "share/jupyter", "etc/jupyter"):
        if not (source / part).exists():
            continue
        shutil.rmtree(env / part, ignore_errors=True)
        (env / part).parent.mkdir(parents=True, exist_ok=True)
        try:  # hard links: instant, and read-only to learners as the originals are
            run("cp", "-al", source / part, env / part)
        except subprocess.CalledProcessError:  # another file system
            run("cp", "-a", source / part, env / part)
    for leftover in (env / f"lib/{PY}/site-packages").glob("*dbkit*"):  # the editable install
        shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    yield env
    shutil.rmtree(root)


def _remove_user(name: str) -> None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return
    assert entry.pw_gecos == MARK, f"{name} exists and is not this test's: not removing it"
    for pid in _pids(entry.pw_uid):  # whatever the hub started as this user
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    for _ in range(50):
        if not _pids(entry.pw_uid):
            break
        time.sleep(0.1)
    run("userdel", "--remove", name)


def _add_user(name: str, *groups: str, system: bool = False) -> pwd.struct_passwd:
    _remove_user(name)
    if system:
        run(
            "useradd",
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "-c",
            MARK,
            name,
        )
    else:
        extra = ["-G", ",".join(groups)] if groups else []
        run("useradd", "--create-home", "-K", "HOME_MODE=0700", "--shell", "/bin/bash", "-c", MARK,
            *extra, name)  # fmt: skip
    return pwd.getpwnam(name)


@pytest.fixture
def learners(requirements: Path) -> Iterator[list[pwd.struct_passwd]]:
    made_group = subprocess.run(["getent", "group", GROUP], capture_output=True).returncode != 0
    if made_group:
        run("groupadd", GROUP)
    users = [_add_user(name, GROUP) for name in LEARNERS]
    try:
        yield users
    finally:
        for name in (*LEARNERS, OUTSIDER):
            _remove_user(name)
        if made_group:
            run("groupdel", GROUP)


def _described(uid: int) -> list[str]:
    """A user's processes, with their command lines (for a failure message)."""
    found = []
    for pid in _pids(uid):
        try:
            status = dict(
                line.split(":\t", 1)
                for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            )
            command = Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
            found.append(
                f"{pid} ({status['Name']}, {status['State']}, parent {status['PPid']}) {command}"
            )
        except FileNotFoundError:
            pass
    return found


def _running(uid: int) -> list[str]:
    """A user's live processes (a zombie has ended; only its parent has not reaped it)."""
    return [p for p in _described(uid) if "Z (zombie)" not in p]


def _pids(uid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    found.append(int(entry.name))
            except FileNotFoundError:
                pass
    return found


@dataclass
class SharedServer:
    url: str  # the hub's admin role (CREATEROLE), as DBKIT_HUB_SHARED_URL
    uid: int


@pytest.fixture(scope="module")
def shared_server(requirements: Path) -> Iterator[SharedServer]:
    """A throwaway PostgreSQL from Debian's packages on 127.0.0.1, as .ci/run starts one."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    need(
        bins,
        "Debian's PostgreSQL is missing (apt-get install postgresql): the shared mode needs it",
    )
    bindir = bins[-1].parent
    user = _add_user(PG_USER, system=True)
    data = Path(tempfile.mkdtemp(prefix="dbkit-hub-pg-"))
    os.chown(data, user.pw_uid, user.pw_gid)
    as_pg = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [], "cwd": "/"}
    port, password = free_port(), secrets.token_urlsafe(16)
    run(bindir / "initdb", "-D", data / "db", "-U", "postgres", "--auth-local=trust",
        "--auth-host=scram-sha-256", "--no-locale", "-E", "UTF8", **as_pg)  # fmt: skip
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {data} -c fsync=off"
    run(
        bindir / "pg_ctl",
        "-D",
        data / "db",
        "-l",
        data / "log",
        "-w",
        "-o",
        options,
        "start",
        **as_pg,
    )
    sql = f"CREATE ROLE hub_admin LOGIN CREATEROLE PASSWORD '{password}'"
    run(
        bindir / "psql",
        "-h",
        data,
        "-p",
        str(port),
        "-U",
        "postgres",
        "-d",
        "postgres",
        "-c",
        sql,
        **as_pg,
    )
    try:
        yield SharedServer(
            f"postgresql://hub_admin:{password}@127.0.0.1:{port}/postgres", user.pw_uid
        )
    finally:
        subprocess.run([bindir / "pg_ctl", "-D", data / "db", "-m", "immediate", "-w", "stop"],
                       capture_output=True, **as_pg)  # fmt: skip
        shutil.rmtree(data)
        _remove_user(PG_USER)


# --- the hub --------------------------------------------------------------------------


@dataclass
class Hub:
    port: int
    token: str
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def api(self, method: str, path: str, body: object = None) -> object:
        request = urllib.request.Request(
            self.url("/hub/api" + path),
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            raw = r.read()
        return json.loads(raw) if raw else None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


TEST_CONFIG = """\
c = get_config()
load_subconfig({shipped!r})
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_port}"
c.ConfigurableHTTPProxy.pid_file = {state!r} + "/proxy.pid"
c.JupyterHub.db_url = "sqlite:///" + {state!r} + "/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = {state!r} + "/cookie_secret"
c.JupyterHub.services.append({{"name": "course-test", "api_token": {token!r}}})
c.JupyterHub.load_roles.append({{
    "name": "course-test",
    "scopes": ["admin:users", "admin:servers", "access:servers", "list:users"],
    "services": ["course-test"],
}})
"""


@pytest.fixture
def hub_factory(course_env: Path) -> Iterator:  # type: ignore[type-arg]
    started: list[Hub] = []
    state = Path(tempfile.mkdtemp(prefix="dbkit-hub-state-"))  # 700: the hub's secrets

    def start(database: str, shared_url: str = "") -> Hub:
        hub = Hub(free_port(), secrets.token_hex(16), state / "hub.log")
        config = state / "test_config.py"
        config.write_text(
            TEST_CONFIG.format(
                shipped=str(HUB_DIR / "jupyterhub_config.py"),
                port=hub.port,
                hub_port=free_port(),
                proxy_port=free_port(),
                state=str(state),
                token=hub.token,
            )
        )
        env = {k: v for k, v in os.environ.items() if k not in DB_VARIABLES}
        env |= {"DBKIT_HUB_COURSE": str(PROJECT_ROOT), "DBKIT_HUB_ENV": str(course_env)}
        env |= {"DBKIT_HUB_DATABASE": database, "DBKIT_HUB_SHARED_URL": shared_url}
        with open(hub.log, "wb") as log:
            hub.proc = subprocess.Popen(
                [sys.executable, "-m", "jupyterhub", "-f", str(config)],
                cwd=state, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        started.append(hub)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert hub.proc.poll() is None, f"the hub exited:\n{hub.tail()}"
            try:
                hub.api("GET", "/")
                return hub
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.25)
        raise AssertionError(f"the hub did not answer within 60 s:\n{hub.tail()}")

    yield start
    for hub in started:
        stop_hub(hub)
    shutil.rmtree(state, ignore_errors=True)


def stop_hub(hub: Hub) -> None:
    if hub.proc and hub.proc.poll() is None:
        hub.proc.terminate()  # the hub stops every learner's server on its way out
        hub.proc.wait(timeout=60)


# --- measuring ------------------------------------------------------------------------


def _proc_memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of a process in KiB; (0, 0) once it is gone."""
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0, 0
    values = {line.split(":")[0]: int(line.split()[1]) for line in rollup.splitlines()[1:]}
    return values.get("Rss", 0), values.get("Pss", 0)


def _cpu_seconds(uid: int) -> float:
    """CPU time of a user's processes, with their waited-for children's."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in _pids(uid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / ticks


@dataclass
class Sampler:
    """Memory of each user's processes, every 0.5 s, in a thread (reading smaps is not
    free: more often, and the sampling itself slows the room down)."""

    uids: dict[str, int]
    samples: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Sampler:
        self.samples = {name: [] for name in self.uids}
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            for name, uid in self.uids.items():
                memory = [_proc_memory(pid) for pid in _pids(uid)]
                self.samples[name].append((sum(m[0] for m in memory), sum(m[1] for m in memory)))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self, name: str) -> dict[str, float]:
        rss = [s[0] / 1024 for s in self.samples[name]]
        pss = [s[1] / 1024 for s in self.samples[name]]
        return {
            "rss_median_mib": round(statistics.median(rss), 1),
            "rss_peak_mib": round(max(rss), 1),
            "pss_median_mib": round(statistics.median(pss), 1),
            "pss_peak_mib": round(max(pss), 1),
        }


# --- the learners' work ---------------------------------------------------------------


def start_servers(hub: Hub, names: tuple[str, ...]) -> dict[str, float]:
    """Start every learner's server at once through the REST API, as a room does at nine
    o'clock; the seconds each took until the hub called it ready."""
    hub.api("POST", "/users", {"usernames": [n for n in names if not _known(hub, n)]})

    def start(name: str) -> float:
        asked = time.monotonic()
        hub.api("POST", f"/users/{name}/server")  # returns when ready, or 202 after 10 s
        while time.monotonic() - asked < 90:
            if hub.api("GET", f"/users/{name}")["servers"].get("", {}).get("ready"):  # type: ignore[index]
                return round(time.monotonic() - asked, 2)
            time.sleep(0.1)
        raise AssertionError(f"{name}'s server was not ready in 90 s:\n{hub.tail()}")

    with ThreadPoolExecutor(len(names)) as pool:
        return dict(zip(names, pool.map(start, names), strict=True))


def _known(hub: Hub, name: str) -> bool:
    try:
        hub.api("GET", f"/users/{name}")
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return False
        raise
    return True


def kernel(hub: Hub, name: str, notebook: str) -> RemoteKernel:
    return RemoteKernel(hub.url(f"/user/{name}"), hub.token, f"notebooks/{notebook}")


def one_line(k: RemoteKernel, code: str) -> str:
    """Run code on a kernel; what it printed (an error is a test failure, shown)."""
    outs = k.execute(code)
    errors = [o for o in outs if o.output_type == "error"]
    assert not errors, "\n".join(errors[0].traceback)
    return "".join(o.get("text", "") for o in outs).strip()


def run_notebook(hub: Hub, user: pwd.struct_passwd, notebook: str) -> list[str]:
    """One of the learner's kernels: it is the learner, with the learner's copy; then the
    notebook, checked cell by cell."""
    k = kernel(hub, user.pw_name, notebook)
    try:
        who = one_line(k, "import os, dbkit.settings as s; print(os.getuid(), s.PROJECT_ROOT)")
        assert who == f"{user.pw_uid} {user.pw_dir}/course", who
        return [
            f"{user.pw_name}: {p}"
            for p in check_notebook(k, Path(user.pw_dir, "course", "notebooks", notebook))
        ]
    finally:
        k.close()


@dataclass
class Room:
    problems: list[str]  # nbval's complaints, by learner and cell
    sampler: Sampler
    cpu: dict[str, float]  # CPU seconds of each learner's processes for the notebooks
    startup_cpu: dict[str, float]  # and for starting their server, before that
    wall: float  # seconds until every learner's notebooks were done


def run_the_room(hub: Hub, users: list[pwd.struct_passwd], sampled: dict[str, int]) -> Room:
    """Notebooks 00 and 06 on every learner's kernels, all at the same time."""
    startup_cpu = {u.pw_name: round(_cpu_seconds(u.pw_uid), 2) for u in users}
    started = time.monotonic()
    with Sampler(sampled) as sampler, ThreadPoolExecutor(len(users) * len(NOTEBOOKS)) as pool:
        jobs = [pool.submit(run_notebook, hub, u, nb) for u in users for nb in NOTEBOOKS]
        problems = [p for job in jobs for p in job.result()]
    wall = round(time.monotonic() - started, 2)
    cpu = {u.pw_name: round(_cpu_seconds(u.pw_uid) - startup_cpu[u.pw_name], 2) for u in users}
    return Room(problems, sampler, cpu, startup_cpu, wall)


def login(hub: Hub, name: str, password: str) -> bool:
    """The hub's login form, as a browser fills it in: True if it let the user in."""
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect)
    opener.open(hub.url("/hub/login"), timeout=30).read()
    xsrf = next(c.value for c in jar if c.name == "_xsrf")
    form = urllib.parse.urlencode({"username": name, "password": password, "_xsrf": xsrf})
    try:
        opener.open(hub.url("/hub/login"), data=form.encode(), timeout=30).read()
    except urllib.error.HTTPError as answer:
        return answer.code == 302 and any(c.name.startswith("jupyterhub-session") for c in jar)
    return False  # the login page again, with its error


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def record(mode: str, figures: dict) -> None:  # type: ignore[type-arg]
    FIGURES.parent.mkdir(exist_ok=True)
    known = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    known[mode] = figures
    FIGURES.write_text(json.dumps(known, indent=2) + "\n")
    print(f"\nhub figures, {mode}: {json.dumps(figures, indent=2)}")


# --- the tests ------------------------------------------------------------------------


def test_embedded_mode_each_learner_runs_their_own_postgresql(hub_factory, learners) -> None:  # type: ignore[no-untyped-def]
    hub: Hub = hub_factory("embedded")

    # the authenticator: a learner's own password lets them in; a wrong one, or an
    # account outside the learners' group, does not
    # (checked while the servers start: PAM waits two seconds after a wrong password)
    _add_user(OUTSIDER)
    password = f"right-{hub.token}"
    run("chpasswd", input=f"{LEARNERS[0]}:{password}\n{OUTSIDER}:{password}\n")
    with ThreadPoolExecutor(3) as pool:
        logins = pool.map(login, [hub] * 3, [LEARNERS[0], LEARNERS[0], OUTSIDER],
                          [password, "wrong", password])  # fmt: skip
        startup = start_servers(hub, LEARNERS)
        assert list(logins) == [True, False, False]
    uids = {u.pw_name: u.pw_uid for u in learners}
    room = run_the_room(hub, learners, uids)
    assert not room.problems, "\n\n".join(room.problems)

    for user in learners:  # each server is the learner's, in the learner's copy
        assert_private(user, Path("course"), Path("course/notebooks", NOTEBOOKS[0]))
        assert_private(user, Path("course/.dbkit/pgdata"))
    # a learner's kernel can neither read another learner's notebooks nor reach their
    # server (its socket is in their copy)
    k = kernel(hub, LEARNERS[1], NOTEBOOKS[0])
    try:
        theirs = Path(learners[0].pw_dir, "course", "notebooks", NOTEBOOKS[0])
        read = one_line(k, f"""
try:
    open({str(theirs)!r}).read()
    print("read")
except OSError as exc:
    print("refused:", type(exc).__name__)
""")  # fmt: skip
        assert read == "refused: PermissionError", read
        other = Path(learners[0].pw_dir, "course", ".dbkit", "pgdata")
        reached = one_line(k, f"""
import asyncpg
try:
    await asyncpg.connect(host={str(other)!r}, user="postgres", database="course", timeout=5)
    print("reached")
except Exception as exc:
    print("refused:", type(exc).__name__)
""")  # fmt: skip
        assert reached.startswith("refused:"), reached
    finally:
        k.close()

    check_fails_without_a_database(hub, learners[2])
    stop_hub(hub)
    for user in learners:  # the hub stopped their servers, and post_stop their PostgreSQL
        assert not _running(user.pw_uid), f"{user.pw_name} still runs {_running(user.pw_uid)}"
        assert Path(user.pw_dir, "course", ".dbkit", "pgdata", "PG_VERSION").exists()  # data kept

    record("embedded", figures(startup, room, learners))


def test_shared_mode_each_learner_has_a_role_of_their_own(hub_factory, learners, request) -> None:  # type: ignore[no-untyped-def]
    server: SharedServer = request.getfixturevalue("shared_server")
    hub: Hub = hub_factory("shared", server.url)
    startup = start_servers(hub, LEARNERS)
    server_before = sum(_proc_memory(p)[1] for p in _pids(server.uid))
    cpu_server = _cpu_seconds(server.uid)
    uids = {u.pw_name: u.pw_uid for u in learners} | {"server": server.uid}
    room = run_the_room(hub, learners, uids)
    assert not room.problems, "\n\n".join(room.problems)
    for user in learners:  # nobody started an embedded server
        assert_private(user, Path("course"), Path("course/notebooks", NOTEBOOKS[0]))
        assert not Path(user.pw_dir, "course", ".dbkit", "pgdata").exists()

    # learner 2 cannot open learner 1's own database, nor read learner 1's tables
    k1, k2 = kernel(hub, LEARNERS[0], NOTEBOOKS[1]), kernel(hub, LEARNERS[1], NOTEBOOKS[1])
    try:
        nb06 = one_line(k1, "from dbkit.databases import safe_name; print(safe_name('nb06'))")
        probe = """
import asyncpg, os
async def probe(database, sql):
    try:
        conn = await asyncpg.connect(host=os.environ["DB_HOST"], port=int(os.environ["DB_PORT"]),
            user=os.environ["DB_USER"], password=os.environ["DB_PASS"], database=database)
        try:
            await conn.fetch(sql)
        finally:
            await conn.close()
        return "reached"
    except Exception as exc:
        return "refused: " + type(exc).__name__
"""
        one_line(k2, probe)
        theirs = one_line(k2, f"print(await probe({LEARNERS[0]!r}, 'select 1'))")
        assert theirs == "refused: InsufficientPrivilegeError", theirs
        if nb06 != "dbkit_nb06":  # per-learner names: learner 1's own notebook database
            tables = one_line(k2, f"print(await probe({nb06!r}, 'select * from books'))")
            assert tables == "refused: InsufficientPrivilegeError", tables
    finally:
        k1.close()
        k2.close()

    check_fails_without_a_database(hub, learners[2])
    stop_hub(hub)
    for user in learners:
        assert not _running(user.pw_uid), f"{user.pw_name} still runs {_running(user.pw_uid)}"

    result = figures(startup, room, learners)
    shared = room.sampler.summary("server")
    result["shared_server"] = {
        **shared,
        "pss_before_mib": round(server_before / 1024, 1),
        "pss_peak_per_learner_mib": round(
            (shared["pss_peak_mib"] - server_before / 1024) / len(learners), 1
        ),
        "cpu_s_per_learner": round((_cpu_seconds(server.uid) - cpu_server) / len(learners), 2),
    }
    record("shared", result)


def assert_private(user: pwd.struct_passwd, *paths: Path) -> None:
    """The learner's own, and nobody else's (whatever their home's mode is)."""
    for path in paths:
        st = (Path(user.pw_dir) / path).stat()
        assert st.st_uid == user.pw_uid and st.st_mode & 0o077 == 0, f"{path}: {st.st_mode:o}"


def check_fails_without_a_database(hub: Hub, user: pwd.struct_passwd) -> None:
    """The same check on a kernel whose database is unreachable: it must not pass."""
    k = kernel(hub, user.pw_name, NOTEBOOKS[0])
    try:
        one_line(
            k, "import os; os.environ['DATABASE_URL'] = 'postgresql://nobody@127.0.0.1:1/none'"
        )
        problems = check_notebook(k, Path(user.pw_dir, "course", "notebooks", NOTEBOOKS[0]))
    finally:
        k.close()
    assert problems and "Nothing is listening at 127.0.0.1:1" in problems[0], problems


def figures(startup: dict[str, float], room: Room, users: list[pwd.struct_passwd]) -> dict:  # type: ignore[type-arg]
    per = {u.pw_name: room.sampler.summary(u.pw_name) for u in users}
    peak_rss = max(p["rss_peak_mib"] for p in per.values())
    peak_pss = max(p["pss_peak_mib"] for p in per.values())
    return {
        "startup_s": startup,
        "startup_cpu_s": room.startup_cpu,
        "memory_per_learner": per,
        "cpu_s_per_learner_00_and_06": room.cpu,
        "wall_s_all_learners_00_and_06": room.wall,
        "learners_per_gib_by_peak_rss": round(1024 / peak_rss, 1),
        "learners_per_gib_by_peak_pss": round(1024 / peak_pss, 1),
        "learners_per_core_for_run_all_within_10_s": round(10 / max(room.cpu.values()), 1),
        "cores": os.cpu_count(),
        "load_average_1min_after": round(os.getloadavg()[0], 2),
    }


def test_shared_mode_never_takes_over_a_role_it_did_not_make(course_env, shared_server) -> None:  # type: ignore[no-untyped-def]
    """A hub user named like an existing role (the admin's, `postgres`, a colleague's) must
    not get that role's password reset and handed to them."""
    import asyncio
    import runpy
    from types import SimpleNamespace

    import asyncpg
    from traitlets.config import Config

    env = {"DBKIT_HUB_ENV": str(course_env), "DBKIT_HUB_COURSE": str(PROJECT_ROOT)}
    env |= {"DBKIT_HUB_DATABASE": "shared", "DBKIT_HUB_SHARED_URL": shared_server.url}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        config = runpy.run_path(str(HUB_DIR / "jupyterhub_config.py"), {"get_config": Config})
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    spawner = SimpleNamespace(user=SimpleNamespace(name="colleague"))

    async def attempt() -> None:
        admin = await asyncpg.connect(shared_server.url)
        try:
            await admin.execute("CREATE ROLE colleague LOGIN PASSWORD 'theirs'")
            for name in ("colleague", "hub_admin", "postgres"):
                spawner.user.name = name
                with pytest.raises(RuntimeError, match="exists and is not a learner's"):
                    await config["learner_role"](spawner)
            url = urllib.parse.urlsplit(shared_server.url)
            theirs = await asyncpg.connect(
                host=url.hostname, port=url.port, user="colleague", password="theirs",
                database="postgres",
            )  # fmt: skip
            await theirs.close()  # the password is still theirs
        finally:
            await admin.execute("DROP ROLE IF EXISTS colleague")
            await admin.close()

    asyncio.run(attempt())
