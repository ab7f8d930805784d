"""The proxy tests' fixtures (real backends, misbehaving raw targets and a
real proxy on 127.0.0.1), for the tests of the compose stack's files."""

from tests.proxy.conftest import backends, client, no_proxy_errors, raw_server, start_proxy  # noqa: F401
