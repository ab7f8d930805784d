"""Commands that need no running stack: `init`, `validate`, `lint`, `load`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from shiftlab.cli.context import DEFAULT_CONFIG, fail_config
from shiftlab.cli.options import config_option, json_option
from shiftlab.common.configfile import ConfigError, load_file


@click.command()
@config_option(required=True, help=None)
def validate(config_path: str) -> None:
    """Check a config file; exit 0, or 2 with every problem and its field path."""
    from shiftlab.settings import load_settings

    try:
        settings = load_settings(load_file(config_path))
    except ConfigError as exc:
        fail_config(exc, config_path)
    for warning in settings.warnings():
        click.echo(f"{config_path}: warning: {warning}", err=True)
    click.echo(f"{config_path}: OK ({settings.summary()})")


@click.command()
@click.argument("path", default=DEFAULT_CONFIG, type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: str, force: bool) -> None:
    """Write an annotated shiftlab.yaml to start from."""
    from importlib import resources

    target = Path(path)
    if target.exists() and not force:
        click.echo(f"{path} exists; use --force to overwrite it", err=True)
        sys.exit(1)
    text = resources.files("shiftlab").joinpath("examples/shiftlab.yaml").read_text(encoding="utf-8")
    if target.suffix.lower() == ".json":  # the same settings; JSON has no room for the comments
        import json

        import yaml

        text = json.dumps(yaml.safe_load(text), indent=2) + "\n"
    target.write_text(text)
    click.echo(f"wrote {path}; next: shiftlab up -c {path}")


@click.command()
@click.option("--url", required=True, help="Where to send requests (e.g. http://127.0.0.1:8080/).")
@click.option("--rps", type=float, default=50.0, show_default=True)
@click.option("--duration", type=float, default=10.0, show_default=True, help="Seconds.")
@click.option("--concurrency", type=int, default=8, show_default=True)
@click.option("--max-requests", type=int, default=None, help="Stop after this many (default rps x duration).")
@click.option("--header", "headers", multiple=True, metavar="K:V", help="A request header (repeat).")
@click.option("--dns", "dns_server", default=None, metavar="HOST:PORT",
              help="Resolve the URL's host at this DNS server (the route53 section's) and keep each answer "
                   "for its TTL, a connection per request; shows the counts by load balancer address per second.")
@json_option()
def load(url: str, rps: float, duration: float, concurrency: int, max_requests: int | None,
         headers: tuple[str, ...], dns_server: str | None, as_json: bool) -> None:
    """A bounded load: the split by target group, status counts, latency percentiles."""
    import json

    from shiftlab.loadgen import run_load

    hdrs = {}
    for h in headers:
        k, sep, v = h.partition(":")
        if not sep:
            raise click.BadParameter(f"{h!r} is not K:V", param_hint="--header")
        hdrs[k.strip()] = v.strip()
    if rps <= 0 or duration <= 0:
        raise click.BadParameter("--rps and --duration must be positive")
    from yarl import URL

    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise click.BadParameter(f"{url!r} is not an http(s) URL (e.g. http://127.0.0.1:8080/)", param_hint="--url")
    if dns_server is not None:
        from shiftlab.dnsresolver import parse_server

        try:
            parse_server(dns_server)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--dns") from None
    res = asyncio.run(run_load(url, rps, duration, concurrency=concurrency, headers=hdrs or None,
                               max_requests=max_requests, dns=dns_server))
    s = res.summary()
    if as_json:
        click.echo(json.dumps(s, indent=2))
        return
    click.echo(f"{s['requests']} requests in {s['seconds']} s ({s['rps']}/s); statuses {s['statuses']}; "
               f"connection errors {s['connectionErrors']}")
    for group, n in sorted(s["byGroup"].items()):
        click.echo(f"  {group:<12} {n:>7}  ({100 * n / max(s['requests'], 1):.1f} %)  "
                   f"5xx {s['5xxByGroup'].get(group, 0)}")
    fmt = lambda v: f"{v * 1000:.1f} ms" if v is not None else "-"  # noqa: E731
    click.echo(f"  latency p50 {fmt(s['p50'])}  p90 {fmt(s['p90'])}  p99 {fmt(s['p99'])}")
    if dns_server is not None:
        addresses = sorted(s["byAddress"])
        click.echo(f"  by load balancer address, per second ({s['dnsQueries']} DNS answers fetched):")
        click.echo("    second " + " ".join(f"{a:>15}" for a in addresses))
        for second, counts in s["byAddressPerSecond"].items():
            click.echo(f"    {second:>6} " + " ".join(f"{counts.get(a, 0):>15}" for a in addresses))




@click.command()
@config_option(required=True, help=None)
@click.option("--rps", type=float, default=None,
              help="Production traffic, requests per second, for the detection and starvation checks "
                   "[default: 10].")
@click.option("--rps-from", "profile", type=click.Path(dir_okay=False, exists=True), default=None,
              help="The traffic of a recorded profile instead: `shiftlab load --json` output, or a CSV of "
                   "per-minute request counts (its quietest minute).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "sarif"]), default="text", show_default=True,
              help="sarif: SARIF 2.1.0, as GitHub code scanning reads it.")
@click.option("--output", type=click.Path(dir_okay=False), default=None, help="Write the report here, not to stdout.")
def lint(config_path: str, rps: float | None, profile: str | None, fmt: str, output: str | None) -> None:
    """Static checks of a config: each finding with a rule id, severity, field
    path and AWS page. Exit 0 without errors, 1 with, 2 for an invalid config."""
    from shiftlab.lint import has_errors, profile_rps
    from shiftlab.lint import lint as run_lint
    from shiftlab.lintformat import FORMATS
    from shiftlab.settings import load_settings

    if rps is not None and profile is not None:
        raise click.BadParameter("give --rps or --rps-from, not both", param_hint="--rps-from")
    if profile is not None:
        try:
            rps = profile_rps(Path(profile).read_text(encoding="utf-8"), profile)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--rps-from") from None
    rps = 10.0 if rps is None else rps
    if rps <= 0:
        raise click.BadParameter("must be positive", param_hint="--rps")
    try:
        settings = load_settings(load_file(config_path))
    except ConfigError as exc:
        fail_config(exc, config_path)
    findings = run_lint(settings, rps)
    # A headless service has no request traffic: the report says nothing of req/s (trafficRps null).
    headless = settings.service is not None and settings.service.exposure == "headless"
    report = FORMATS[fmt](findings, config_path, Path(config_path).read_text(encoding="utf-8"),
                          None if headless else rps)
    if output is None:
        click.echo(report, nl=False)
    else:
        Path(output).write_text(report, encoding="utf-8")
    sys.exit(1 if has_errors(findings) else 0)
