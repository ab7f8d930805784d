"""A whole rehearsal stack in one process: the proxy, the controller with its
backend and records, and the controller API. `rehearse`, the demo and the
pytest plugin start one of these.

A stack can be the control plane only, the load balancer a `shiftlab proxy`
in a process of its own (the same config file) that goes on serving while
the controller is killed and restarted: `shiftlab up` runs it so, against
the proxy process it starts or finds (shiftlab/proxyprocess.py) or the one
controller.proxyAdminUrl names."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from shiftlab import serviceconnect
from shiftlab.common.configfile import ConfigError
from shiftlab.common.netsafety import serve_app, strong_token
from shiftlab.common.ports import free_port
from shiftlab.controller.activation import activation_env
from shiftlab.controller.api import make_api_app
from shiftlab.controller.backends import docker_options
from shiftlab.controller.backends.base import Backend
from shiftlab.controller.backends.docker_options import DockerRuntime
from shiftlab.controller.backends.docker_spec import HOST_NETWORK
from shiftlab.controller.cloudwatch_http import cloudwatch_env
from shiftlab.controller.records import Records
from shiftlab.controller.router import DnsWeightedRouter, HttpRouter, NoLoadBalancer, Router, RouterError
from shiftlab.controller.service import ServiceController
from shiftlab.proxy.app import Proxy
from shiftlab.proxy.config import LoadBalancer
from shiftlab.proxy.dns import DnsServer, Zone
from shiftlab.settings import Settings

log = logging.getLogger("shiftlab.controller")

PROXY_WAIT_SECONDS = 30.0  # for a load balancer started at the same time as the controller


def make_backend(kind: str, state_dir: Path, start_timeout: float = 60.0,
                 docker: DockerRuntime | None = None) -> Backend:
    """`docker`: the config file's controller.docker; the SHIFTLAB_DOCKER_*
    variables win over it (options already resolved stay as they are)."""
    if kind == "docker":
        from shiftlab.controller.backends.docker import DockerBackend  # imported only when asked for

        return DockerBackend(state_dir, start_timeout=start_timeout, options=docker_options.resolve(docker))
    from shiftlab.controller.backends.process import ProcessBackend

    return ProcessBackend(state_dir, start_timeout=start_timeout)


def tasks_reach_controller(kind: str, backend: Backend) -> bool:
    """Whether the controller's address as it binds it (127.0.0.1, say) is the
    controller's from inside a task: a process task's, and a container's on the
    host's network (controller.docker.network "host"); not a container's on a
    network of its own, whose 127.0.0.1 is itself."""
    if kind == "process":
        return True
    return getattr(getattr(backend, "options", None), "network", None) == HOST_NETWORK


class Stack:
    def __init__(self, settings: Settings, state_dir: Path | str | None = None, backend: Backend | None = None,
                 api_port: int | None = None, admin_port: int | None = None, separate_proxy: bool = False) -> None:
        """`separate_proxy`: the load balancer runs in another process, as with
        controller.proxyAdminUrl, whose admin URL is set (`proxy_admin_url`)
        before `start()` (`shiftlab up` starts or finds it first)."""
        if settings.service is None:
            raise ConfigError(["service: is required to run the controller (the file only configures a proxy)"])
        self.settings = settings
        runtime = settings.controller
        self.state_dir = Path(state_dir or runtime.stateDir).resolve()
        self.token = strong_token(runtime.token, "controller.token")
        self.api_port = runtime.port if api_port is None else api_port
        # A headless service (no loadBalancers) has no load balancer at all:
        # no proxy, in this process or another (router.NoLoadBalancer).
        self.headless = settings.service.exposure == "headless"
        self.proxy_admin_url = None if self.headless else runtime.proxyAdminUrl
        lb = settings.load_balancer_config
        # The token the proxy resolves from the same file (or SHIFTLAB_TOKEN).
        self._proxy_token = (strong_token(lb.Admin.Token, "loadBalancer.Admin.Token")
                             if lb is not None and not self.headless and (self.proxy_admin_url is not None
                                                                          or separate_proxy) else None)
        self.proxy: Proxy | None = None
        if not self.headless and self.proxy_admin_url is None and not separate_proxy:
            assert lb is not None
            self.proxy = Proxy(lb, time_scale=settings.time_scale, admin_port=admin_port)
        self._backend = backend
        # Resolved now (file and SHIFTLAB_DOCKER_* variables), so that a bad
        # variable is refused before anything starts.
        self._docker = (docker_options.resolve(runtime.docker) if backend is None and runtime.backend == "docker"
                        else None)
        self.controller: ServiceController | None = None
        self.router: Router | None = None
        # The route53 section's DNS server (in this process, wherever the load balancer runs).
        self.dns: DnsServer | None = None
        self.records: Records | None = None
        self._runner: web.AppRunner | None = None
        # Service Connect's client tasks (service.serviceConnectClients).
        self.clients: serviceconnect.Clients | None = None

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.controller.address}:{self.api_port}"

    async def start(self) -> None:
        s = self.settings
        assert s.service is not None
        assert self.headless or self.proxy is not None or self.proxy_admin_url is not None, "proxy_admin_url first"
        if self.proxy is not None:
            # Listeners open once the controller has registered the tasks it
            # found (a restart after a crash) and set the weights its records say.
            await self.proxy.start(listeners=False)
        try:
            if self.headless:
                self.router = NoLoadBalancer()
            elif self.proxy is not None:
                self.router = HttpRouter(self.proxy.admin_url, self.proxy.token)
            else:
                assert self.proxy_admin_url is not None
                http = self.router = HttpRouter(self.proxy_admin_url, self._proxy_token)
                await self._check_proxy(http, self.proxy_admin_url)
            self.records = Records(self.state_dir / "records.sqlite")
            router: Router = self.router
            if s.route53 is not None:
                self.dns = DnsServer(Zone(s.route53, s.time_scale), s.route53.Address, s.route53.Port)
                await self.dns.start()
                log.info("DNS server (route53): %s (UDP and TCP)", self.dns.endpoint)
                route = s.dns_route()
                if route is not None:
                    router = DnsWeightedRouter(self.router, self.dns.zone, *route)
            backend = self._backend or make_backend(s.controller.backend, self.state_dir,
                                                    s.controller.taskStartTimeoutSeconds, self._docker)
            self.controller = ServiceController(
                s.controller_settings(),
                router, backend, self.records,
            )
            if not self.api_port:
                # Known before the first task starts (and the first hook runs), so
                # that every task gets the endpoint's URL.
                self.api_port = free_port(s.controller.address)
            if tasks_reach_controller(s.controller.backend, backend):
                self.controller.task_env.update(cloudwatch_env(self.api_url, self.token))
                if self.headless:
                    self.controller.task_env.update(activation_env(self.api_url, self.token))
            # Command hooks reach the controller's API (the activation hook: controller/activation.py).
            self.controller.hook_env.update(activation_env(self.api_url, self.token))
            # Every task of the service can call the namespace's endpoints, as on ECS.
            self.controller.task_env.update(serviceconnect.client_env(s.service))
            self.controller.task_hosts.update(serviceconnect.client_hosts(s.service))
            await self.controller.start()
            if self.proxy is not None:
                await self.proxy.open_listeners()
            if s.service.serviceConnectClients:
                self.clients = serviceconnect.Clients(s.service, backend, self.controller.task_env)
                await self.clients.start()
            app = make_api_app(self.controller, self.token, s.controller.address)
            # Bodies as sent: the CloudWatch endpoint checks a signature over a gzip body before inflating it.
            self._runner, self.api_port = await serve_app(app, s.controller.address, self.api_port,
                                                          auto_decompress=False)
        except BaseException:
            await self.stop()
            raise
        log.info("controller API and dashboard: %s", self.api_url)

    async def stop(self, stop_tasks: bool = True) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.clients is not None:
            await self.clients.stop(stop_tasks)
            self.clients = None
        if self.controller is not None:
            with contextlib.suppress(Exception):
                # A load balancer of its own process goes on: it must not keep stopped tasks as targets.
                await self.controller.stop(stop_tasks=stop_tasks, deregister=self.proxy is None and not self.headless)
            self.controller = None
        if self.router is not None:
            await self.router.close()
            self.router = None
        if self.dns is not None:
            await self.dns.stop()
            self.dns = None
        if self.records is not None:
            self.records.close()
            self.records = None
        if self.proxy is not None:
            await self.proxy.stop()

    async def _check_proxy(self, router: HttpRouter, url: str) -> None:
        """Wait for the load balancer of another process, and refuse one that
        does not run this file's loadBalancer: the listener ports the CLI and
        rehearsals read from the file, the target groups and the time scale
        (health checks, drains) must be the ones in force."""
        log.info("controller only: load balancer admin API at %s", url)
        try:
            await router.wait_ready(PROXY_WAIT_SECONDS)
        except RouterError as exc:
            raise RouterError(f"no load balancer answers at {url} after {PROXY_WAIT_SECONDS:g} s "
                              f"(start it with `shiftlab proxy -c FILE`): {exc}") from None
        problems = proxy_mismatches(self.settings.load_balancer, self.settings.time_scale, await router.state(), url)
        if problems:
            raise ConfigError(problems)

    async def __aenter__(self) -> Stack:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()


def proxy_mismatches(conf: LoadBalancer, time_scale: float, state: dict[str, Any], url: str) -> list[str]:
    """How the load balancer described by `state` (GET /admin/state) differs
    from the `conf` the controller was given, one line per field."""
    hint = "(run `shiftlab proxy` and `shiftlab up` with the same file and timeScale)"
    running = {ls["Name"]: ls for ls in state.get("Listeners", [])}
    problems = []
    for i, ls in enumerate(conf.Listeners):
        got = running.get(ls.name)
        if got is None:
            problems.append(f"loadBalancer.Listeners[{i}]: {ls.name!r} is not a listener of the load balancer "
                            f"at {url} (it has {', '.join(running) or 'none'}) {hint}")
        elif got["Port"] != ls.Port:
            problems.append(f"loadBalancer.Listeners[{i}].Port: {ls.Port}, but the load balancer at {url} "
                            f"listens on {got['Port']} for {ls.name!r} {hint}")
    groups = {g["TargetGroupName"] for g in state.get("TargetGroups", [])}
    for i, tg in enumerate(conf.TargetGroups):
        if tg.Name not in groups:
            problems.append(f"loadBalancer.TargetGroups[{i}]: {tg.Name!r} is not a target group of the load "
                            f"balancer at {url} {hint}")
    their_scale = state.get("TimeScale")
    if their_scale is not None and float(their_scale) != time_scale:
        problems.append(f"timeScale: {time_scale:g}, but the load balancer at {url} runs at {their_scale:g} {hint}")
    return problems
